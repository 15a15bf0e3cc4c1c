"""Users (admin only): list, add and remove console users, as `sentistream users` does."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from console import queries
from console.context import console, templates
from console.errors import UserError
from console.roles import ROLE_NAMES, Role
from console.security import action, csrf_token, page
from console.users import User, add_user, list_users, remove_user


@page(Role.admin)
async def users_page(request: Request, user: User) -> Response:
    ctx = console(request)
    users = await run_in_threadpool(list_users, ctx.engine)
    return templates.TemplateResponse(request, "users.html", {
        "user": user, "csrf": csrf_token(request), "users": users, "roles": ROLE_NAMES})


async def _audited(request: Request, user: User, action_name: str, target: str, change) -> None:
    ctx = console(request)
    try:
        await run_in_threadpool(change)
    except UserError as e:
        raise HTTPException(400, str(e)) from None
    await ctx.write(queries.write_audit, user.name, action_name, target, None)


@action(Role.admin)
async def add(request: Request, user: User, form: FormData) -> Response:
    name, role, password = (str(form.get(k, "")) for k in ("name", "role", "password"))
    await _audited(request, user, "user_add", name, lambda: add_user(console(request).engine, name, role, password))
    return RedirectResponse("/users", status_code=303)


@action(Role.admin)
async def remove(request: Request, user: User, form: FormData) -> Response:
    name = str(form.get("name", ""))
    if name == user.name:
        raise HTTPException(400, "you cannot remove yourself; another admin can")
    await _audited(request, user, "user_remove", name, lambda: remove_user(console(request).engine, name))
    return RedirectResponse("/users", status_code=303)


routes = [
    Route("/users", users_page, methods=["GET"]),
    Route("/users/add", add, methods=["POST"]),
    Route("/users/remove", remove, methods=["POST"]),
]

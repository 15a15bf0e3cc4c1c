"""Login and logout. Failed logins are limited per user name and client address."""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from console.context import console, templates
from console.security import check_csrf, csrf_token
from console.users import authenticate

log = structlog.get_logger("console.auth")


async def login_form(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {"csrf": csrf_token(request), "error": None})


async def login(request: Request) -> Response:
    form = await request.form()
    check_csrf(request, form)
    name, password = str(form.get("username", "")), str(form.get("password", ""))
    address = request.client.host if request.client else ""
    ctx = console(request)
    if ctx.limiter.blocked(name, address):
        log.warning("console.login_limited", user=name)
        return templates.TemplateResponse(request, "login.html", {
            "csrf": csrf_token(request), "error": "Too many failed logins: wait a minute."}, status_code=429)
    user = await ctx.read(authenticate, name, password)
    if user is None:
        ctx.limiter.failed(name, address)
        log.info("console.login_failed", user=name)
        return templates.TemplateResponse(request, "login.html", {
            "csrf": csrf_token(request), "error": "Wrong user name or password."}, status_code=401)
    ctx.limiter.succeeded(name, address)
    request.session.clear()  # a fresh session (and CSRF token) at each login
    request.session["user"] = user.name
    log.info("console.login", user=user.name, role=user.role.name)
    return RedirectResponse("/", status_code=303)


async def logout(request: Request) -> Response:
    check_csrf(request, await request.form())
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]

"""Sessions, roles and CSRF. The session cookie (Starlette's SessionMiddleware, signed with
itsdangerous) holds the user's name and a CSRF token; the role is read from the database on every
request, so a removed user or a changed role takes effect at once."""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console.context import console
from console.roles import Role
from console.users import User, find_user

CSRF_FIELD = "csrf_token"


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf(request: Request, form: FormData) -> None:
    sent, expected = form.get(CSRF_FIELD), request.session.get("csrf")
    if not (isinstance(sent, str) and expected and hmac.compare_digest(sent, expected)):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


async def current_user(request: Request) -> User | None:
    name = request.session.get("user")
    if not name:
        return None
    user = await console(request).read(find_user, name)
    if user is None:
        request.session.clear()
    return user


def _denied(request: Request) -> Response:
    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/login", status_code=303)
    raise HTTPException(401, "log in first")


def page(role: Role = Role.viewer):
    """A GET handler for users of ``role`` or above: ``handler(request, user)``."""
    def wrap(handler: Callable[[Request, User], Awaitable[Response]]):
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            user = await current_user(request)
            if user is None:
                return _denied(request)
            if user.role < role:
                raise HTTPException(403, f"your role ({user.role.name}) may not do this; it needs {role.name}")
            return await handler(request, user)
        return endpoint
    return wrap


def action(role: Role):
    """A POST handler for users of ``role`` or above, after the CSRF check: ``handler(request, user, form)``.
    The CSRF check comes first: a forged request learns nothing about the session."""
    def wrap(handler: Callable[[Request, User, FormData], Awaitable[Response]]):
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            form = await request.form()
            check_csrf(request, form)
            user = await current_user(request)
            if user is None:
                raise HTTPException(401, "log in first")
            if user.role < role:
                raise HTTPException(403, f"your role ({user.role.name}) may not do this; it needs {role.name}")
            return await handler(request, user, form)
        return endpoint
    return wrap

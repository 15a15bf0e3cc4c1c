"""The Starlette application: sessions, the pages' routes, static files, /metrics, and an access log
that names the path only (query strings carry search text)."""

from __future__ import annotations

import secrets
import time

import structlog
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from console.context import HERE, Console
from console.metrics import metrics, registry
from console.pages import adapters, auth, labelling, live, search, users
from console.ratelimit import LoginLimiter
from schemas.settings import Settings

log = structlog.get_logger("console")
access = structlog.get_logger("console.access")


class AccessLog:
    """One line per request: method, path, status, milliseconds; never the query string."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def record(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            access.info("console.request", method=scope["method"], path=scope["path"], status=status[0],
                        ms=round((time.perf_counter() - start) * 1000, 1))


# No framing (clickjacking a promote button), no sniffing, and no search query in a Referer header.
SECURITY_HEADERS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin")]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def add(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, add if scope["type"] == "http" else send)


async def http_error(request: Request, e: HTTPException) -> Response:
    return PlainTextResponse(f"{e.status_code}: {e.detail}\n", status_code=e.status_code, headers=e.headers)


def secret_key(settings: Settings) -> str:
    if settings.console.secret_key is not None:
        return settings.console.secret_key.get_secret_value()
    log.warning("console.random_secret_key", detail="console.secret_key is unset: a random key signs the "
                "sessions, so every login ends when the console restarts")
    return secrets.token_urlsafe(32)


def build_app(settings: Settings, engine: Engine) -> Starlette:
    cfg = settings.console
    routes = [*auth.routes, *live.routes, *labelling.routes, *adapters.routes, *search.routes, *users.routes,
              Route("/metrics", metrics, methods=["GET"]),
              Mount("/static", StaticFiles(directory=HERE / "static"), name="static")]
    middleware = [
        Middleware(AccessLog),
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=secret_key(settings), session_cookie="sentistream_console",
                   max_age=cfg.session_max_age_s, same_site="lax", https_only=False),
    ]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: http_error})
    app.state.console = Console(settings, engine, LoginLimiter(cfg.login_attempts_per_minute))
    app.state.metrics = registry(engine, settings)
    return app

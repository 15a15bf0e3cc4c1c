"""The live view (charts fed by /live/data every console.refresh_s) and the drift page."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from console.context import console, templates
from console.lag import consumer_lag
from console.security import csrf_token, page
from console.users import User
from console.views import drift_view, live


@page()
async def live_page(request: Request, user: User) -> Response:
    ctx = console(request)
    return templates.TemplateResponse(request, "live.html", {
        "user": user, "csrf": csrf_token(request), "refresh_s": ctx.settings.console.refresh_s,
        "window_minutes": ctx.settings.console.window_minutes})


@page()
async def live_data(request: Request, user: User) -> Response:
    ctx = console(request)
    view = await ctx.read(live, ctx.settings)
    lag = await run_in_threadpool(consumer_lag, ctx.settings.console.daemon_metrics_url)
    return JSONResponse(view.to_json(lag))


@page()
async def drift_page(request: Request, user: User) -> Response:
    ctx = console(request)
    view = await ctx.read(drift_view, ctx.settings)
    return templates.TemplateResponse(request, "drift.html", {
        "user": user, "csrf": csrf_token(request), "drift": view, "cfg": ctx.settings.console})


routes = [
    Route("/", live_page, methods=["GET"]),
    Route("/live/data", live_data, methods=["GET"]),
    Route("/drift", drift_page, methods=["GET"]),
]

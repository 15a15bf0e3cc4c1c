"""The adapters registry: each version's gate decision, gold metrics, report plots, lineage; promote
and roll back (curator and above) after a confirmation page, each recorded in console_audit."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Connection
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from console import queries
from console.context import console, templates
from console.roles import Role
from console.security import action, csrf_token, page
from console.users import User
from schemas.errors import RegistryError
from schemas.registry import promote_in, rollback_in
from schemas.settings import Settings

# The plots training/report.py writes into training.reports_dir / VERSION.
PLOTS = {"confusion_matrix": "confusion_matrix.png", "curves": "curves.png"}


def report_file(settings: Settings, version: str, plot: str) -> Path | None:
    """The plot's file, if the trainer wrote it; the version must be a registered one (the caller
    checks), and the path must stay under reports_dir."""
    root = settings.training.reports_dir.resolve()
    path = (root / version / PLOTS[plot]).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


@page()
async def list_page(request: Request, user: User) -> Response:
    ctx = console(request)
    rows = await ctx.read(queries.adapters, ctx.settings.training.adapter_name)
    return templates.TemplateResponse(request, "adapters.html", {
        "user": user, "csrf": csrf_token(request), "adapters": rows,
        "metric": ctx.settings.training.primary_metric, "can_change": user.role >= Role.curator})


def _detail(c: Connection, version: str) -> tuple[dict | None, list[queries.AuditEntry]]:
    return queries.adapter(c, version), queries.audit_entries(c, version)


@page()
async def detail_page(request: Request, user: User) -> Response:
    ctx = console(request)
    version = request.path_params["version"]
    row, audit = await ctx.read(_detail, version)
    if row is None:
        raise HTTPException(404, "no such adapter version")
    plots = [p for p in PLOTS if report_file(ctx.settings, version, p)]
    return templates.TemplateResponse(request, "adapter.html", {
        "user": user, "csrf": csrf_token(request), "a": row, "audit": audit, "plots": plots,
        "metric": ctx.settings.training.primary_metric, "can_change": user.role >= Role.curator})


@page()
async def plot(request: Request, user: User) -> Response:
    ctx = console(request)
    version, name = request.path_params["version"], request.path_params["plot"]
    if name not in PLOTS or await ctx.read(queries.adapter, version) is None:
        raise HTTPException(404, "no such plot")
    path = report_file(ctx.settings, version, name)
    if path is None:
        raise HTTPException(404, "the trainer wrote no such plot for this version")
    return FileResponse(path, media_type="image/png")


@page(Role.curator)
async def confirm_page(request: Request, user: User) -> Response:
    ctx = console(request)
    version = request.path_params.get("version")
    if version is not None and await ctx.read(queries.adapter, version) is None:
        raise HTTPException(404, "no such adapter version")
    active = await ctx.read(queries.active_adapter, ctx.settings.training.adapter_name)
    return templates.TemplateResponse(request, "confirm.html", {
        "user": user, "csrf": csrf_token(request), "version": version,
        "active": active["version"] if active else None})


def _promote(c: Connection, version: str, user: str, channel: str) -> dict:
    row = promote_in(c, version, channel=channel, reasons=[f"promoted by {user} in the console"])
    queries.write_audit(c, user, "promote", version, {"previous": row.get("previous")})
    return row


def _rollback(c: Connection, name: str, user: str, channel: str) -> dict:
    out = rollback_in(c, name, channel=channel)
    queries.write_audit(c, user, "rollback", out["to"], {"from": out["from"]})
    return out


def _confirmed(form: FormData) -> None:
    if form.get("confirm") != "yes":
        raise HTTPException(400, "not confirmed: tick the confirmation box")


@action(Role.curator)
async def promote(request: Request, user: User, form: FormData) -> Response:
    _confirmed(form)
    ctx, version = console(request), request.path_params["version"]
    try:
        await ctx.write(_promote, version, user.name, ctx.settings.training.notify_channel)
    except RegistryError as e:
        raise HTTPException(409, str(e)) from None
    return RedirectResponse(f"/adapters/{version}", status_code=303)


@action(Role.curator)
async def rollback(request: Request, user: User, form: FormData) -> Response:
    _confirmed(form)
    ctx = console(request)
    try:
        out = await ctx.write(_rollback, ctx.settings.training.adapter_name, user.name,
                              ctx.settings.training.notify_channel)
    except RegistryError as e:
        raise HTTPException(409, str(e)) from None
    return RedirectResponse(f"/adapters/{out['to']}", status_code=303)


routes = [
    Route("/adapters", list_page, methods=["GET"]),
    Route("/adapters/rollback", confirm_page, methods=["GET"]),
    Route("/adapters/rollback", rollback, methods=["POST"]),
    Route("/adapters/{version}", detail_page, methods=["GET"]),
    Route("/adapters/{version}/promote", confirm_page, methods=["GET"]),
    Route("/adapters/{version}/promote", promote, methods=["POST"]),
    Route("/adapters/{version}/{plot}.png", plot, methods=["GET"]),
]

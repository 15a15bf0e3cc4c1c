"""The labelling queue: one message at a time, labels 1..N, s skips, u undoes the user's last label."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from console import queries
from console.context import console, templates
from console.queue import Next, next_message, remember_skip
from console.roles import Role
from console.security import action, csrf_token, page
from console.users import User
from schemas.settings import Settings


@dataclass(frozen=True)
class Progress:
    new_labels: int  # since the active adapter's label watermark
    min_new_labels: int  # training.min_new_labels: a refit starts at this many
    mine: int
    gold_labeller: bool  # whether the user's labels feed the gold set (training.gold_labelers)


def progress(c: Connection, settings: Settings, user: str) -> Progress:
    cfg = settings.training
    act = queries.active_adapter(c, cfg.adapter_name)
    gold = not cfg.gold_labelers or user in cfg.gold_labelers
    return Progress(queries.labels_since(c, act["label_watermark"] if act else 0), cfg.min_new_labels,
                    queries.labels_by(c, user), gold)


def _queue_page(c: Connection, settings: Settings, user: str, skips: list[str], rng) -> tuple[Next, Progress]:
    return next_message(c, user, skips, rng), progress(c, settings, user)


@page(Role.labeller)
async def label_page(request: Request, user: User) -> Response:
    ctx = console(request)
    nxt, prog = await ctx.read(_queue_page, ctx.settings, user.name, request.session.get("skips", []), ctx.rng)
    return templates.TemplateResponse(request, "label.html", {
        "user": user, "csrf": csrf_token(request), "next": nxt, "progress": prog,
        "labels": ctx.settings.training.labels, "undone": request.query_params.get("undone")})


def _label(settings: Settings, form: FormData) -> tuple[str, str]:
    message_id, label = str(form.get("message_id", "")), str(form.get("label", ""))
    if label not in settings.training.labels:
        raise HTTPException(400, f"unknown label; use one of {', '.join(settings.training.labels)}")
    if not message_id:
        raise HTTPException(400, "no message_id")
    return message_id, label


def _write(c: Connection, message_id: str, label: str, user: str) -> int:
    if queries.prediction(c, message_id) is None:
        raise HTTPException(404, "no such message")
    return queries.write_label(c, message_id, label, user)


@action(Role.labeller)
async def label(request: Request, user: User, form: FormData) -> Response:
    ctx = console(request)
    message_id, value = _label(ctx.settings, form)
    await ctx.write(_write, message_id, value, user.name)
    back = str(form.get("next", "/label"))
    return RedirectResponse(back if back in ("/label", "/search") else "/label", status_code=303)


@action(Role.labeller)
async def skip(request: Request, user: User, form: FormData) -> Response:
    request.session["skips"] = remember_skip(request.session.get("skips", []), str(form.get("message_id", "")))
    return RedirectResponse("/label", status_code=303)


@action(Role.labeller)
async def undo(request: Request, user: User, form: FormData) -> Response:
    undone = await console(request).write(queries.undo_last_label, user.name)
    return RedirectResponse("/label?undone=1" if undone else "/label?undone=0", status_code=303)


routes = [
    Route("/label", label_page, methods=["GET"]),
    Route("/label", label, methods=["POST"]),
    Route("/label/skip", skip, methods=["POST"]),
    Route("/label/undo", undo, methods=["POST"]),
]

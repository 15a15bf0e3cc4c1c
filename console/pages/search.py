"""Search predictions by text, label, source, confidence range and time; correct a label from the results
(the form posts to /label, which writes a label row)."""

from __future__ import annotations

from datetime import datetime

from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import queries
from console.context import console, templates
from console.roles import Role
from console.security import csrf_token, page
from console.users import User


def _text(params: QueryParams, key: str) -> str | None:
    value = params.get(key, "").strip()
    return value or None


def _number(params: QueryParams, key: str) -> float | None:
    value = _text(params, key)
    try:
        return float(value) if value is not None else None
    except ValueError:
        raise HTTPException(400, f"{key} must be a number") from None


def _time(params: QueryParams, key: str) -> datetime | None:
    value = _text(params, key)
    try:
        t = datetime.fromisoformat(value) if value is not None else None
    except ValueError:
        raise HTTPException(400, f"{key} must be a date and time, e.g. 2026-12-07T10:00") from None
    return t.astimezone() if t is not None and t.tzinfo is None else t


def search_filter(params: QueryParams) -> queries.SearchFilter:
    return queries.SearchFilter(
        text=_text(params, "q"), label=_text(params, "label"), source=_text(params, "source"),
        min_confidence=_number(params, "min_confidence"), max_confidence=_number(params, "max_confidence"),
        since=_time(params, "since"), until=_time(params, "until"))


@page()
async def search_page(request: Request, user: User) -> Response:
    ctx = console(request)
    f = search_filter(request.query_params)
    searched = any(v is not None for v in vars(f).values())
    rows = await ctx.read(queries.search, f) if searched else []
    return templates.TemplateResponse(request, "search.html", {
        "user": user, "csrf": csrf_token(request), "f": f, "rows": rows, "searched": searched,
        "labels": ctx.settings.training.labels, "params": request.query_params,
        "can_label": user.role >= Role.labeller})


routes = [Route("/search", search_page, methods=["GET"])]

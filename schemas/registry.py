"""The ``adapters`` table: register candidates, promote (with NOTIFY), reject, roll back. The trainer
and the console both change it, so it lives below both.

Promotion and rollback run in one transaction that locks the name's rows, so the partial unique
index on ``status = 'active'`` never sees two active rows; Postgres delivers the NOTIFY (payload:
the version) only when that transaction commits, so the daemon never reads a half-done switch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy import select, text, update
from sqlalchemy.engine import Connection, Engine

from schemas.db import AdapterRow
from schemas.errors import RegistryError

log = structlog.get_logger("schemas.registry")
T = AdapterRow.__table__


def now() -> datetime:
    return datetime.now(UTC)


def register(engine: Engine, *, name: str, version: str, kind: str, base_model: str, artifact_path: Path,
             sha256: str, metrics: dict, parent_version: str | None, label_watermark: int) -> None:
    with engine.begin() as c:
        c.execute(T.insert().values(
            name=name, version=version, kind=kind, base_model=base_model, artifact_path=str(artifact_path),
            sha256=sha256, metrics=metrics, status="candidate", parent_version=parent_version,
            label_watermark=label_watermark, created_at=now(), status_changed_at=now()))
    log.info("registry.candidate", name=name, version=version)


def get(engine: Engine | Connection, version: str) -> dict | None:
    def q(c):
        row = c.execute(select(T).where(T.c.version == version)).mappings().first()
        return dict(row) if row else None
    if isinstance(engine, Connection):
        return q(engine)
    with engine.connect() as c:
        return q(c)


def active(engine: Engine, name: str) -> dict | None:
    with engine.connect() as c:
        row = c.execute(select(T).where(T.c.name == name, T.c.status == "active")).mappings().first()
    return dict(row) if row else None


def latest(engine: Engine, name: str) -> dict | None:
    """The newest adapter of any status: its watermark marks the labels already tried."""
    with engine.connect() as c:
        row = c.execute(select(T).where(T.c.name == name).order_by(T.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


def record_gold(engine: Engine, version: str, gold: dict, *, scored_by: str) -> bool:
    """Keep the gold-set metrics of an adapter registered without any (the shipped one), measured by
    refit ``scored_by``; an adapter's own gold metrics are never overwritten. True when recorded."""
    with engine.begin() as c:
        row = get(c, version)
        if row is None or (row["metrics"] or {}).get("gold"):
            return False
        metrics = {**(row["metrics"] or {}), "gold": gold, "gold_scored_by": scored_by}
        c.execute(update(T).where(T.c.version == version).values(metrics=metrics))
    return True


def list_adapters(engine: Engine, name: str | None = None) -> list[dict]:
    q = select(T).order_by(T.c.id)
    if name:
        q = q.where(T.c.name == name)
    with engine.connect() as c:
        return [dict(r) for r in c.execute(q).mappings()]


def _lock_name(c: Connection, name: str) -> None:
    if c.dialect.name == "postgresql":
        c.execute(select(T.c.id).where(T.c.name == name).with_for_update())


def _notify(c: Connection, channel: str, version: str) -> None:
    if c.dialect.name == "postgresql":
        c.execute(text("SELECT pg_notify(:channel, :version)"), {"channel": channel, "version": version})


def _set(c: Connection, version: str, status: str, reasons: list[str] | None = None) -> None:
    values = {"status": status, "status_changed_at": now()}
    if reasons is not None:
        values["reasons"] = reasons
    c.execute(update(T).where(T.c.version == version).values(**values))


def promote(engine: Engine, version: str, *, channel: str, reasons: list[str] | None = None) -> dict:
    """Make ``version`` the active adapter of its name; the previous active one is retired."""
    with engine.begin() as c:
        return promote_in(c, version, channel=channel, reasons=reasons)


def promote_in(c: Connection, version: str, *, channel: str, reasons: list[str] | None = None) -> dict:
    """:func:`promote` inside the caller's transaction (the console writes its audit row in it)."""
    row = get(c, version)
    if row is None:
        raise RegistryError(f"no adapter version {version!r}; see 'sentistream adapters list'")
    if row["status"] == "active":
        return row
    _lock_name(c, row["name"])
    prev = c.execute(select(T.c.version).where(T.c.name == row["name"], T.c.status == "active")).scalar()
    if prev:
        _set(c, prev, "retired")
    _set(c, version, "active", reasons)
    _notify(c, channel, version)
    log.info("registry.promoted", name=row["name"], version=version, previous=prev)
    return {**row, "status": "active", "previous": prev}


def reject(engine: Engine, version: str, reasons: list[str]) -> None:
    with engine.begin() as c:
        _set(c, version, "rejected", reasons)
    log.info("registry.rejected", version=version, reasons=reasons)


def rollback(engine: Engine, name: str, *, channel: str) -> dict:
    """Reject the active adapter and re-activate the most recently retired one."""
    with engine.begin() as c:
        return rollback_in(c, name, channel=channel)


def rollback_in(c: Connection, name: str, *, channel: str) -> dict:
    """:func:`rollback` inside the caller's transaction (the console writes its audit row in it)."""
    _lock_name(c, name)
    cur = c.execute(select(T.c.version).where(T.c.name == name, T.c.status == "active")).scalar()
    if cur is None:
        raise RegistryError(f"adapter {name!r} has no active version to roll back")
    prev = c.execute(select(T.c.version).where(T.c.name == name, T.c.status == "retired")
                     .order_by(T.c.status_changed_at.desc(), T.c.id.desc()).limit(1)).scalar()
    if prev is None:
        raise RegistryError(f"adapter {name!r}: no retired version to roll back to from {cur!r}")
    _set(c, cur, "rejected", ["rolled back by operator"])
    _set(c, prev, "active", ["restored by rollback"])
    _notify(c, channel, prev)
    log.info("registry.rolled_back", name=name, from_version=cur, to_version=prev)
    return {"name": name, "from": cur, "to": prev}

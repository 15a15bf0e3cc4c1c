"""The shipped adapter as version 1 of the registry.

A name with no registry rows gets the default preset's adapter as its active version, so the gate
measures the first refit against it (on the gold set, like any active adapter) and ``adapters
rollback`` can return to it. A name with any row, whatever its status, is left alone: the registry
is then the operator's. ``sentistream db upgrade`` reaches this module through the
``sentistream.db_seed`` entry point, since schemas must not import models.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import structlog
from sqlalchemy import select
from sqlalchemy.engine import Engine

from schemas.db import AdapterRow, dialect_insert, make_engine
from schemas.settings import Settings, TrainingSettings

log = structlog.get_logger(__name__)
T = AdapterRow.__table__

Outcome = Literal["seeded", "present", "mismatch", "taken"]


@dataclass(frozen=True)
class Seeded:
    name: str
    version: str | None
    outcome: Outcome
    # One line for logs and ``db upgrade``: what happened, or why nothing was seeded.
    message: str

    @property
    def inserted(self) -> bool:
        return self.outcome == "seeded"


def _has_rows(engine: Engine, name: str) -> bool:
    with engine.connect() as c:
        return c.execute(select(T.c.id).where(T.c.name == name).limit(1)).first() is not None


def _mismatch(cfg: TrainingSettings, spec) -> str | None:
    """Why the shipped adapter cannot be the active version for this training configuration."""
    if tuple(cfg.labels) != spec.label_names:
        return (f"training.labels {list(cfg.labels)} differ from preset {spec.name!r}'s "
                f"{list(spec.label_names)}")
    if cfg.base_model is not None:
        from models.build import resolve_base

        base = Path(resolve_base(spec).base.id)
        if Path(cfg.base_model).resolve() != base.resolve():
            return f"training.base_model {str(cfg.base_model)!r} is not preset {spec.name!r}'s base {spec.base.id!r}"
    return None


def seed_shipped_adapter(engine: Engine, cfg: TrainingSettings) -> Seeded:
    """Register the default preset's adapter as the active version of ``cfg.adapter_name`` when that
    name has no registry rows; otherwise insert nothing."""
    name = cfg.adapter_name
    if _has_rows(engine, name):
        return Seeded(name, None, "present", f"adapter {name!r} already has registry versions; nothing seeded")
    from models.checks import adapter_sha256
    from models.loading import DEFAULT_PRESET
    from models.spec import load_spec

    spec = load_spec(DEFAULT_PRESET)
    version = spec.adapter.version or spec.name
    why = _mismatch(cfg, spec)
    if why:
        return Seeded(name, version, "mismatch", f"shipped adapter {version!r} not registered for {name!r}: "
                      f"{why}; the first refit is promoted without a comparison")
    # load_spec makes a preset's adapter path absolute inside the installed package (the repo for
    # an editable install, site-packages in the image), where every process of this install finds it.
    path = spec.adapter.path.resolve()
    now = datetime.now(UTC)
    row = {"name": name, "version": version, "kind": spec.adapter.kind, "base_model": spec.base.id,
           "artifact_path": str(path), "sha256": adapter_sha256(path), "metrics": {"preset": spec.name},
           "status": "active", "reasons": [f"shipped with preset {spec.name!r}"], "parent_version": None,
           "label_watermark": 0, "created_at": now, "status_changed_at": now}
    with engine.begin() as c:
        # Nothing is inserted over a concurrent start's seed, or a version another name holds.
        insert = dialect_insert(c.dialect.name)(T).values(**row).on_conflict_do_nothing()
        done = c.execute(insert.returning(T.c.id)).first() is not None
        holder = None if done else c.execute(select(T.c.name).where(T.c.version == version)).scalar()
    if done:
        return Seeded(name, version, "seeded",
                      f"registered shipped adapter {version!r} as the active version of {name!r}")
    if holder in (name, None):  # a concurrent start seeded it, or a refit was promoted meanwhile
        return Seeded(name, version, "present", f"adapter {name!r} already has registry versions; nothing seeded")
    return Seeded(name, version, "taken", f"shipped adapter {version!r} not registered for {name!r}: that version "
                  f"is registered under adapter name {holder!r}")


def ensure_shipped_adapter(engine: Engine, cfg: TrainingSettings) -> Seeded:
    """:func:`seed_shipped_adapter`, logged: the trainer's start-up (``train --once``, ``trainer``)."""
    res = seed_shipped_adapter(engine, cfg)
    if res.inserted:
        log.info("registry.seeded", name=res.name, version=res.version)
    elif res.outcome != "present":
        log.warning("registry.seed_skipped", name=res.name, version=res.version, why=res.message)
    return res


def seed_registry(settings: Settings) -> str:
    """The ``sentistream.db_seed`` entry point: run after ``db upgrade``; returns the line it prints."""
    engine = make_engine(settings.database.url.get_secret_value())
    try:
        return seed_shipped_adapter(engine, settings.training).message
    finally:
        engine.dispose()

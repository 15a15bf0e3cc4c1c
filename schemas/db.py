"""SQLAlchemy 2.0 tables shared by the daemon, the trainer and dashboards.

Alembic migrations in ``schemas/migrations`` create them; ``upgrade()`` runs them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    func,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY, so BIGINT keys fall back to INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")
TZ = DateTime(timezone=True)


class Base(DeclarativeBase):
    pass


class PredictionRow(Base):
    __tablename__ = "predictions"

    message_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(128))
    label_id: Mapped[int] = mapped_column(Integer)
    scores: Mapped[dict[str, float]] = mapped_column(JSONType)
    confidence: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(256))
    adapter_version: Mapped[str | None] = mapped_column(String(256))
    source: Mapped[str | None] = mapped_column(String(256))
    lang: Mapped[str | None] = mapped_column(String(32))
    author: Mapped[str | None] = mapped_column(String(256))
    message_created_at: Mapped[datetime | None] = mapped_column(TZ)
    topic: Mapped[str] = mapped_column(String(256))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    latency_ms: Mapped[float] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(TZ)
    classified_at: Mapped[datetime] = mapped_column(TZ)
    written_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())

    __table_args__ = (
        Index("ix_predictions_classified_at", "classified_at"),
        Index("ix_predictions_source_classified_at", "source", "classified_at"),
        Index("ix_predictions_label", "label"),
    )


class DeadLetterRow(Base):
    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(256))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String(512))
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    original: Mapped[bytes] = mapped_column(LargeBinary)
    error_kind: Mapped[str] = mapped_column(String(64))
    error_text: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(TZ)

    __table_args__ = (
        # The record's position is its identity: a replay after a crash inserts nothing new.
        UniqueConstraint("topic", "partition", "offset", name="uq_dead_letters_position"),
        Index("ix_dead_letters_kind_failed_at", "error_kind", "failed_at"),
    )


class LabelRow(Base):
    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(512))
    # Set when the labelled text is not (or not yet) in predictions, e.g. imported datasets.
    text: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(128))
    labeled_by: Mapped[str] = mapped_column(String(256))
    labeled_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    origin: Mapped[str] = mapped_column(String(32), server_default="sql")

    __table_args__ = (
        UniqueConstraint("message_id", "labeled_by", name="uq_labels_message_labeler"),
        Index("ix_labels_labeled_at", "labeled_at"),
    )


_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def dialect_insert(dialect: str):
    """The dialect's ``insert``, which has ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    insert = _INSERTS.get(dialect)
    if insert is None:
        raise ValueError(f"database.url: dialect {dialect!r} is not supported")
    return insert


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(url, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def alembic_config(url: str):  # -> alembic.config.Config, imported lazily to keep start-up light
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    # '%' must be doubled for configparser interpolation (passwords may contain it).
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


class AdapterRow(Base):
    """Adapter registry: the trainer inserts candidates, the gate marks them active or rejected,
    the daemon serves the single active row per name."""

    __tablename__ = "adapters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(256), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    base_model: Mapped[str] = mapped_column(String(512))
    artifact_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # candidate / active / rejected / retired
    status: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str] | None] = mapped_column(JSONType)
    parent_version: Mapped[str | None] = mapped_column(String(256))
    # Highest labels.id the adapter was trained on: the next refit counts new labels from here.
    label_watermark: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    status_changed_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())

    __table_args__ = (
        Index("ix_adapters_name_status", "name", "status"),
        Index("ix_adapters_name_created_at", "name", "created_at"),
        Index("uq_adapters_one_active", "name", unique=True,
              postgresql_where=sql_text("status = 'active'"), sqlite_where=sql_text("status = 'active'")),
        CheckConstraint("status IN ('candidate', 'active', 'rejected', 'retired')", name="ck_adapters_status"),
    )

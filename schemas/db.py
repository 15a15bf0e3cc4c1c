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
    Boolean,
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
from sqlalchemy import exc
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

from schemas.errors import ConfigError, DatabaseUnavailable, SchemaNotCurrent
from schemas.settings import DatabaseSettings

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY, so BIGINT keys fall back to INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")
TZ = DateTime(timezone=True)
MIGRATIONS = Path(__file__).parent / "migrations"


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
    # Whether the model's spec serves ``lang``; None: the language or the spec's languages are unknown.
    lang_supported: Mapped[bool | None] = mapped_column(Boolean)
    author: Mapped[str | None] = mapped_column(String(256))
    message_created_at: Mapped[datetime | None] = mapped_column(TZ)
    topic: Mapped[str] = mapped_column(String(256))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    latency_ms: Mapped[float] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(TZ)
    classified_at: Mapped[datetime] = mapped_column(TZ)
    written_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    # Top-1 minus top-2 score (schemas.scores.margin): the console's labelling queue reads the least
    # first. Null on rows written before revision 0005.
    margin: Mapped[float | None] = mapped_column(Float)

    # Revision 0005 also adds a pg_trgm index on text where the extension can be created (the
    # console's text search); it is not declared here because it may be absent.
    __table_args__ = (
        Index("ix_predictions_classified_at", "classified_at"),
        Index("ix_predictions_source_classified_at", "source", "classified_at"),
        Index("ix_predictions_label", "label"),
        Index("ix_predictions_margin", "margin", "message_id"),
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
        Index("ix_dead_letters_failed_at", "failed_at"),
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
        # The console: a labeller's last label (undo) and their progress.
        Index("ix_labels_labeled_by_labeled_at", "labeled_by", "labeled_at"),
    )


_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def dialect_insert(dialect: str):
    """The dialect's ``insert``, which has ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    insert = _INSERTS.get(dialect)
    if insert is None:
        raise ConfigError(f"database.url: dialect {dialect!r} is not supported")
    return insert


def make_engine(url: str, **kwargs: Any) -> Engine:
    # SQL parameters hold message text: keep them out of every exception's text (and so every log).
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        return create_engine(url, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def connect_args(settings: DatabaseSettings) -> dict:
    """The driver's connection options: connect timeout and TLS (Postgres only)."""
    if settings.url.get_secret_value().startswith("sqlite"):
        return {}
    args: dict = {"connect_timeout": settings.connect_timeout_s}
    if settings.sslmode:
        args["sslmode"] = settings.sslmode
    if settings.sslrootcert:
        args["sslrootcert"] = str(settings.sslrootcert)
    return args


def database_engine(settings: DatabaseSettings, **kwargs: Any) -> Engine:
    """An engine with the settings' connect timeout, TLS options and (Postgres) pool size."""
    url = settings.url.get_secret_value()
    if not url.startswith("sqlite") and "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", settings.pool_size)
    return make_engine(url, connect_args=connect_args(settings), **kwargs)


def describe_error(e: BaseException) -> str:
    """``Type: the driver's first line``, without the SQL statement or its parameters (message text)."""
    orig = getattr(e, "orig", None) or e
    diag = getattr(orig, "diag", None)
    name = type(orig).__name__
    text = (getattr(diag, "message_primary", None) or str(orig)).strip().removeprefix(f"{name}: ")
    return f"{name}: {text.splitlines()[0] if text else ''}"[:300]


def _reason(settings: DatabaseSettings, e: BaseException) -> str:
    """The driver's first line, with the URL's password masked (some drivers echo the DSN)."""
    reason = describe_error(e)
    password = make_url(settings.url.get_secret_value()).password
    return reason.replace(str(password), "***") if password else reason


def unreachable(settings: DatabaseSettings, e: BaseException) -> DatabaseUnavailable:
    """The one line for a database that refused or failed a connection."""
    return DatabaseUnavailable(f"cannot reach the database at {settings.safe_url} ({_reason(settings, e)}): check "
                               "SENTISTREAM_DATABASE__URL and that the server is running")


# Postgres' SQLSTATE for a missing grant.
INSUFFICIENT_PRIVILEGE = "42501"


def check_database(settings: DatabaseSettings) -> str:
    """Check that the database answers and is at this code's newest migration; return its revision.

    Raises :class:`DatabaseUnavailable` or :class:`SchemaNotCurrent`, each one line that says what to fix.
    """
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    where = settings.safe_url
    try:
        engine = database_engine(settings, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                current = set(MigrationContext.configure(conn).get_current_heads())
        finally:
            engine.dispose()
    except exc.SQLAlchemyError as e:
        if getattr(getattr(e, "orig", None), "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
            raise DatabaseUnavailable(f"the database role at {where} cannot read the schema version "
                                      f"({_reason(settings, e)}): GRANT SELECT ON alembic_version to it "
                                      "(docs/reliability.md, Database roles)") from None
        raise unreachable(settings, e) from None
    script = ScriptDirectory(str(MIGRATIONS))
    heads = set(script.get_heads())
    if current == heads:
        return ",".join(sorted(current))
    have, need = ",".join(sorted(current)) or "none", ",".join(sorted(heads))
    if not current:
        raise SchemaNotCurrent(f"database at {where} has no sentistream schema (revision none, need {need}): "
                               "run 'sentistream db upgrade'")
    if not current <= {s.revision for s in script.walk_revisions()}:
        raise SchemaNotCurrent(f"database at {where} is at revision {have}, which this sentistream does not "
                               f"know (its newest is {need}): upgrade sentistream, or point "
                               "SENTISTREAM_DATABASE__URL at another database")
    raise SchemaNotCurrent(f"database at {where} is at revision {have}, need {need}: run 'sentistream db upgrade'")


def alembic_config(url: str):  # -> alembic.config.Config, imported lazily to keep start-up light
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
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


class ConsoleUserRow(Base):
    """A console login; ``sentistream users`` manages them. The password is an argon2 hash."""

    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    # viewer < labeller < curator < admin
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())

    __table_args__ = (
        CheckConstraint("role IN ('viewer', 'labeller', 'curator', 'admin')", name="ck_console_users_role"),
    )


class ConsoleAuditRow(Base):
    """Who did what in the console that changed more than a label (promote, rollback, users)."""

    __tablename__ = "console_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(256))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (Index("ix_console_audit_at", "at"),)

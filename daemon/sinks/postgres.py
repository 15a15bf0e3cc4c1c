"""Postgres (or SQLite for the demo) sink: one transaction per batch, idempotent inserts.

Predictions are keyed on the message id and dead letters on their topic/partition/offset, so a
batch replayed after a crash inserts nothing twice.

On Postgres the predictions go by COPY into a session-local staging table, then one
``INSERT … SELECT … ON CONFLICT DO NOTHING`` in the same transaction: the idempotence of the
plain insert at the cost of a COPY (a multi-row INSERT binds and checks every parameter).
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import structlog
from sqlalchemy import Column, Connection, MetaData, Table, exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from daemon.batch import Batch
from daemon.errors import SinkRejected, SinkUnavailable
from daemon.sinks.base import OffsetCommit, Sink
from schemas.db import DeadLetterRow, PredictionRow, database_engine, describe_error, dialect_insert
from schemas.scores import margin
from schemas.settings import DatabaseSettings

log = structlog.get_logger(__name__)

PREDICTION_COLUMNS = (
    "message_id", "text", "label", "label_id", "scores", "confidence", "model_version", "adapter_version",
    "source", "lang", "lang_supported", "author", "message_created_at", "topic", "partition", "offset",
    "latency_ms", "received_at", "classified_at", "margin",
)
# Temporary: one per database session, emptied at every commit, never seen by other sessions. Its
# columns are declared from the model, not copied with LIKE, which would need SELECT on predictions.
STAGING = "sentistream_incoming_predictions"
_STAGING_TABLE = Table(
    STAGING, MetaData(), *(Column(c, PredictionRow.__table__.c[c].type) for c in PREDICTION_COLUMNS),
    prefixes=["TEMPORARY"], postgresql_on_commit="DELETE ROWS",
)
_CREATE_STAGING = str(CreateTable(_STAGING_TABLE, if_not_exists=True).compile(dialect=postgresql.dialect()))
_COLUMN_LIST = ", ".join(f'"{c}"' for c in PREDICTION_COLUMNS)
_SCORES = PREDICTION_COLUMNS.index("scores")
_COPY = f"COPY {STAGING} ({_COLUMN_LIST}) FROM STDIN"
_MERGE = (f"INSERT INTO predictions ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {STAGING} "
          "ON CONFLICT (message_id) DO NOTHING")


def prediction_rows(batch: Batch) -> list[tuple]:
    """One tuple per prediction, in PREDICTION_COLUMNS order."""
    rows = []
    for item, p in zip(batch.items, batch.predictions):
        if p is None:
            continue
        m = item.msg
        rows.append((
            m.id, m.text, p.label, p.label_id, p.scores, p.confidence, p.model_version,
            p.adapter_version, m.source, p.lang, p.lang_supported, m.author, m.created_at, item.topic,
            item.partition, item.offset, p.latency_ms, p.received_at, p.classified_at, margin(p.scores),
        ))
    return rows


def copy_row(row: tuple) -> tuple[Any, ...]:
    """A prediction_rows tuple as COPY takes it: the scores as JSON text."""
    return (*row[:_SCORES], orjson.dumps(row[_SCORES]).decode(), *row[_SCORES + 1:])


def dead_letter_rows(batch: Batch) -> list[dict]:
    return [d.model_dump() for d in batch.dead]


class PostgresSink(Sink):
    name = "postgres"

    def __init__(self, settings: DatabaseSettings) -> None:
        self.safe_url = settings.safe_url
        # No ping per checkout (a round trip per batch): a connection that died fails its write,
        # which invalidates it; the retry after the backoff takes a fresh one.
        self.engine = database_engine(settings, pool_pre_ping=False)
        # Whether predictions go by COPY: Postgres, once the role is known to have TEMPORARY.
        self._copy: bool | None = None if self.engine.dialect.name == "postgresql" else False
        insert = dialect_insert(self.engine.dialect.name)
        self._pred_stmt = insert(PredictionRow).on_conflict_do_nothing(index_elements=["message_id"])
        self._dead_stmt = insert(DeadLetterRow).on_conflict_do_nothing(
            index_elements=["topic", "partition", "offset"]
        )

    def write(self, batch: Batch, commit: OffsetCommit | None = None) -> None:
        preds, dead = prediction_rows(batch), dead_letter_rows(batch)
        if not preds and not dead:
            return
        try:
            with self.engine.begin() as conn:
                if preds:
                    if self._copy is None:
                        self._copy = self._may_create_temporary_tables(conn)
                    (self._copy_predictions if self._copy else self._insert_predictions)(conn, preds)
                if dead:
                    conn.execute(self._dead_stmt, dead)
            return
        # The COPY runs on the driver's connection: its errors arrive unwrapped (psycopg.Error).
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError,
                psycopg.OperationalError, psycopg.InterfaceError) as e:
            raise SinkUnavailable(self.name, e) from e
        except (exc.DBAPIError, psycopg.Error) as e:
            if getattr(e, "connection_invalidated", False):
                raise SinkUnavailable(self.name, e) from e
            reason = describe_error(e)
        # Raised outside the handler: the driver's error (its DETAIL can quote a row, message text
        # included) must not ride along as the context of what is logged.
        raise SinkRejected(
            f"the database at {self.safe_url} refused a batch ({reason}); its offsets stay uncommitted, so the "
            "next run reads it again (a missing table: run 'sentistream db upgrade')"
        )

    def _may_create_temporary_tables(self, conn: Connection) -> bool:
        """PUBLIC has TEMPORARY on a new database; where it was revoked, write by INSERT and say so."""
        if conn.exec_driver_sql("SELECT has_database_privilege(current_database(), 'TEMPORARY')").scalar():
            return True
        log.warning("database_writes_by_insert", reason="the role may not create temporary tables",
                    fix="GRANT TEMPORARY ON DATABASE <database> TO <the daemon's role> (COPY is faster)")
        return False

    def _insert_predictions(self, conn: Connection, rows: list[tuple]) -> None:
        conn.execute(self._pred_stmt, [dict(zip(PREDICTION_COLUMNS, r)) for r in rows])

    def _copy_predictions(self, conn: Connection, rows: list[tuple]) -> None:
        if not conn.info.get(STAGING):
            # Per pooled connection: temporary tables live as long as the database session.
            conn.exec_driver_sql(_CREATE_STAGING)
            conn.info[STAGING] = True
        try:
            with conn.connection.driver_connection.cursor() as cur:
                with cur.copy(_COPY) as copy:
                    for r in rows:
                        copy.write_row(copy_row(r))
                cur.execute(_MERGE)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            # Behind SQLAlchemy's back: tell its pool this connection is gone.
            conn.invalidate()
            raise

    def ping(self) -> bool:
        """Whether the database answers now (the daemon's readiness probe)."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("select 1")
            return True
        except exc.SQLAlchemyError:
            return False

    def close(self) -> None:
        self.engine.dispose()

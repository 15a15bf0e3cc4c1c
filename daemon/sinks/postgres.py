"""Postgres (or SQLite for the demo) sink: one transaction per batch, idempotent inserts.

Predictions are keyed on the message id and dead letters on their topic/partition/offset, so a
batch replayed after a crash inserts nothing twice.
"""

from __future__ import annotations

from sqlalchemy import exc

from daemon.batch import Batch
from daemon.errors import SinkUnavailable
from schemas.db import DeadLetterRow, PredictionRow, dialect_insert, make_engine
from schemas.settings import DatabaseSettings

def connect_args(settings: DatabaseSettings) -> dict:
    url = settings.url.get_secret_value()
    if url.startswith("sqlite"):
        return {}
    args: dict = {"connect_timeout": settings.connect_timeout_s}
    if settings.sslmode:
        args["sslmode"] = settings.sslmode
    if settings.sslrootcert:
        args["sslrootcert"] = str(settings.sslrootcert)
    return args


def prediction_rows(batch: Batch) -> list[dict]:
    rows = []
    for item, p in zip(batch.items, batch.predictions):
        if p is None:
            continue
        m = item.msg
        rows.append({
            "message_id": m.id, "text": m.text, "label": p.label, "label_id": p.label_id,
            "scores": p.scores, "confidence": p.confidence, "model_version": p.model_version,
            "adapter_version": p.adapter_version, "source": m.source, "lang": m.lang,
            "author": m.author, "message_created_at": m.created_at, "topic": item.topic,
            "partition": item.partition, "offset": item.offset, "latency_ms": p.latency_ms,
            "received_at": p.received_at, "classified_at": p.classified_at,
        })
    return rows


def dead_letter_rows(batch: Batch) -> list[dict]:
    return [d.model_dump() for d in batch.dead]


class PostgresSink:
    name = "postgres"

    def __init__(self, settings: DatabaseSettings) -> None:
        url = settings.url.get_secret_value()
        kwargs = {} if url.startswith("sqlite") else {"pool_size": settings.pool_size}
        self.engine = make_engine(url, connect_args=connect_args(settings), **kwargs)
        insert = dialect_insert(self.engine.dialect.name)
        self._pred_stmt = insert(PredictionRow).on_conflict_do_nothing(index_elements=["message_id"])
        self._dead_stmt = insert(DeadLetterRow).on_conflict_do_nothing(
            index_elements=["topic", "partition", "offset"]
        )

    def write(self, batch: Batch) -> None:
        preds, dead = prediction_rows(batch), dead_letter_rows(batch)
        if not preds and not dead:
            return
        try:
            with self.engine.begin() as conn:
                if preds:
                    conn.execute(self._pred_stmt, preds)
                if dead:
                    conn.execute(self._dead_stmt, dead)
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as e:
            raise SinkUnavailable(self.name, e) from e
        except exc.DBAPIError as e:
            if e.connection_invalidated:
                raise SinkUnavailable(self.name, e) from e
            raise

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("select 1")
            return True
        except exc.SQLAlchemyError:
            return False

    def close(self) -> None:
        self.engine.dispose()

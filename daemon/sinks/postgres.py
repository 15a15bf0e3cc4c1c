"""Postgres (or SQLite for the demo) sink: one transaction per batch, idempotent inserts.

Predictions are keyed on the message id and dead letters on their topic/partition/offset, so a
batch replayed after a crash inserts nothing twice.
"""

from __future__ import annotations

from sqlalchemy import exc

from daemon.batch import Batch
from daemon.errors import SinkRejected, SinkUnavailable
from daemon.sinks.base import OffsetCommit, Sink
from schemas.db import DeadLetterRow, PredictionRow, database_engine, describe_error, dialect_insert
from schemas.scores import margin
from schemas.settings import DatabaseSettings


def prediction_rows(batch: Batch) -> list[dict]:
    rows = []
    for item, p in zip(batch.items, batch.predictions):
        if p is None:
            continue
        m = item.msg
        rows.append({
            "message_id": m.id, "text": m.text, "label": p.label, "label_id": p.label_id,
            "scores": p.scores, "confidence": p.confidence, "model_version": p.model_version,
            "adapter_version": p.adapter_version, "source": m.source, "lang": p.lang,
            "lang_supported": p.lang_supported,
            "author": m.author, "message_created_at": m.created_at, "topic": item.topic,
            "partition": item.partition, "offset": item.offset, "latency_ms": p.latency_ms,
            "received_at": p.received_at, "classified_at": p.classified_at, "margin": margin(p.scores),
        })
    return rows


def dead_letter_rows(batch: Batch) -> list[dict]:
    return [d.model_dump() for d in batch.dead]


class PostgresSink(Sink):
    name = "postgres"

    def __init__(self, settings: DatabaseSettings) -> None:
        self.safe_url = settings.safe_url
        self.engine = database_engine(settings)
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
                    conn.execute(self._pred_stmt, preds)
                if dead:
                    conn.execute(self._dead_stmt, dead)
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as e:
            raise SinkUnavailable(self.name, e) from e
        except exc.DBAPIError as e:
            if e.connection_invalidated:
                raise SinkUnavailable(self.name, e) from e
            raise SinkRejected(
                f"the database at {self.safe_url} refused a batch ({describe_error(e)}); its offsets stay "
                "uncommitted, so the next run reads it again (a missing table: run 'sentistream db upgrade')"
            ) from None

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

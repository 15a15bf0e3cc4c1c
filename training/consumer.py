"""The labels topic: JSON records ``{"message_id", "label", "labeled_by"?, "text"?}`` upserted into
the labels table; a record that cannot be used goes to the ``dead_letters`` table with its reason, in
the same transaction. Offsets are committed only after that transaction commits, so a crash replays
records (the upsert and the dead letters' position key make that harmless) and never loses one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import structlog
from kafka.consumer.fetcher import ConsumerRecord
from sqlalchemy.engine import Engine

from schemas.messages import LABEL_REJECTED, utcnow
from schemas.settings import KafkaSettings
from training.errors import LabelError
from training.labels import ImportResult, write_labels
from training.readers import Example, Rejected, normalize_label

log = structlog.get_logger("training.consumer")


def parse_record(value: bytes | None, position: int, labels: Sequence[str]) -> Example | Rejected:
    raw = (value or b"")[:500].decode("utf-8", "replace")
    try:
        rec = json.loads(value or b"")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return Rejected(position, f"invalid JSON: {e}", raw)
    if not isinstance(rec, dict):
        return Rejected(position, "not a JSON object", raw)
    mid = str(rec.get("message_id") or rec.get("id") or "").strip()
    if not mid:
        return Rejected(position, "missing message_id", raw)
    text = rec.get("text")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        return Rejected(position, "empty text", raw)
    try:
        label = normalize_label(rec.get("label"), labels)
    except LabelError as e:
        return Rejected(position, str(e), raw)
    by = rec.get("labeled_by")
    return Example(mid, text.strip() if text else None, label, str(by) if by else None, position)


def dead_letter_row(record: ConsumerRecord, rejected: Rejected) -> dict:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset,
            "message_id": None, "key": record.key, "original": record.value or b"",
            "error_kind": LABEL_REJECTED, "error_text": rejected.reason, "failed_at": utcnow()}


class LabelsConsumer:
    def __init__(self, kafka: KafkaSettings, topic: str, engine: Engine, labels: Sequence[str],
                 group_id: str | None = None) -> None:
        from kafka import KafkaConsumer

        self.engine, self.labels = engine, tuple(labels)
        self.consumer = KafkaConsumer(
            topic,
            group_id=group_id or f"{kafka.group_id}-trainer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=kafka.session_timeout_ms,
            **kafka.client_config("-trainer"),
        )

    def poll_once(self, timeout_ms: int = 1000, max_records: int = 2000) -> ImportResult:
        """Read what is there, write it, then commit the offsets."""
        batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        records = [r for recs in batches.values() for r in recs]
        if not records:
            return ImportResult()
        # A rejected item's line is its record's index in this poll, which maps it back to its position.
        items = [parse_record(r.value, i, self.labels) for i, r in enumerate(records)]
        res = write_labels(self.engine, items, labeled_by="labels-topic", origin="kafka",
                           dead_letter=lambda rej: dead_letter_row(records[rej.line], rej))
        self.consumer.commit()
        res.rejected = [replace(r, line=records[r.line].offset) for r in res.rejected]
        for r in res.rejected:
            log.warning("labels.topic_rejected", offset=r.line, reason=r.reason)
        log.info("labels.consumed", written=res.written, rejected=len(res.rejected))
        return res

    def drain(self, idle_ms: int = 1500, max_records: int = 2000) -> ImportResult:
        """Poll until a poll returns nothing."""
        total = ImportResult()
        while True:
            res = self.poll_once(idle_ms, max_records)
            if not res.written and not res.rejected:
                return total
            total.written += res.written
            total.rejected += res.rejected

    def close(self) -> None:
        self.consumer.close()

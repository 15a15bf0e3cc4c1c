"""Stage 2 — decode and validate: each record becomes an :class:`Item` or a dead letter."""

from __future__ import annotations

from kafka.consumer.fetcher import ConsumerRecord

from daemon.batch import Item
from schemas.errors import MessageError
from schemas.messages import SCHEMA, DeadLetter, InboundMessage, decode_message

# Stored in Postgres text columns, which cannot hold NUL: one such value would fail its whole batch
# on every retry. (The schema already refuses NUL in ``text``.)
_STORED_FIELDS = ("id", "source", "lang", "author")


def _check_storable(msg: InboundMessage) -> None:
    for name in _STORED_FIELDS:
        value = getattr(msg, name)
        if value is not None and "\x00" in value:
            raise MessageError(SCHEMA, f"{name}: contains a NUL character, which the database cannot store")


def _may_hold_nul(value: bytes, key: bytes | None) -> bool:
    # A NUL in a decoded field comes from a raw NUL byte (plain text, or an id taken from the key)
    # or a JSON "\u0000" escape; one scan of the bytes spares most messages the per-field check.
    return b"\x00" in value or b"\\u0000" in value or (key is not None and b"\x00" in key)


def decode_record(record: ConsumerRecord, max_text_chars: int) -> Item | DeadLetter:
    try:
        msg = decode_message(
            record.value,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            max_text_chars=max_text_chars,
        )
        if _may_hold_nul(record.value, record.key):
            _check_storable(msg)
    except MessageError as e:
        return DeadLetter(
            original=record.value or b"",
            key=record.key,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error_kind=e.kind,
            error_text=e.detail,
        )
    return Item(msg, record.topic, record.partition, record.offset, record.timestamp, record.key, record.value)

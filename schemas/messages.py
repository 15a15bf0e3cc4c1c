"""Wire formats: what comes in from Kafka, what goes out, and what is dead-lettered."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.errors import MessageError

# Dead-letter reason codes; each is a stable string users can alert and query on.
UNDECODABLE = "undecodable_bytes"
INVALID_JSON = "invalid_json"
MISSING_TEXT = "missing_text"
EMPTY_TEXT = "empty_text"
OVERSIZED = "oversized_text"
SCHEMA = "schema_violation"
CLASSIFY_FAILED = "classification_failed"
# A record on the labels topic the trainer could not use (its reason is in error_text).
LABEL_REJECTED = "label_rejected"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class InboundMessage(BaseModel):
    """A tweet- or review-shaped message; extra fields are kept in ``meta``."""

    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=False)

    id: str = Field(min_length=1, max_length=512)
    text: str
    source: str | None = Field(default=None, max_length=256)
    lang: str | None = Field(default=None, max_length=32)
    created_at: datetime | None = None
    author: str | None = Field(default=None, max_length=256)
    meta: dict[str, Any] | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, v: Any) -> Any:
        # Tweets carry numeric ids; bools are not ids.
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("text")
    @classmethod
    def _text_ok(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty")
        if "\x00" in v:
            # Postgres TEXT cannot hold NUL; storing it altered would break byte-exactness.
            raise ValueError("text contains a NUL character")
        return v


def derive_id(topic: str, partition: int, offset: int, key: bytes | None) -> str:
    """Identity of a plain-text message: its Kafka key if it has one, else its position."""
    if key:
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            return "key:" + key.hex()
    return f"{topic}:{partition}:{offset}"


def decode_message(
    value: bytes | None,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    max_text_chars: int,
) -> InboundMessage:
    """Parse one Kafka record value, raising :class:`MessageError` with a reason code."""
    if value is None:
        raise MessageError(MISSING_TEXT, "record has no value (tombstone)")
    try:
        raw = value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MessageError(UNDECODABLE, f"value is not UTF-8 at byte {e.start}") from None
    stripped = raw.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError as e:
            raise MessageError(INVALID_JSON, str(e)[:200]) from None
        if not isinstance(doc, dict):
            raise MessageError(SCHEMA, f"JSON value must be an object, got {type(doc).__name__}")
        if "text" not in doc or doc["text"] is None:
            raise MessageError(MISSING_TEXT, "JSON object has no 'text' field")
        if "id" not in doc or doc["id"] is None:
            doc = {**doc, "id": derive_id(topic, partition, offset, key)}
    else:
        doc = {"id": derive_id(topic, partition, offset, key), "text": raw}
    text = doc.get("text")
    if isinstance(text, str):
        if not text.strip():
            raise MessageError(EMPTY_TEXT, "text is empty or whitespace")
        if len(text) > max_text_chars:
            raise MessageError(OVERSIZED, f"text has {len(text)} characters, limit is {max_text_chars}")
    try:
        return InboundMessage.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "message"
        raise MessageError(SCHEMA, f"{loc}: {first['msg']}"[:500]) from None


class Prediction(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())

    message_id: str
    label: str
    label_id: int
    scores: dict[str, float]
    confidence: float
    model_version: str
    adapter_version: str | None = None
    latency_ms: float
    source: str | None = None
    # The message's language: the ``lang`` it gave, else the detected one (None: unknown).
    lang: str | None = None
    # Whether the model serves ``lang``; False: classified all the same, by a model not made for it.
    lang_supported: bool | None = None
    received_at: datetime
    classified_at: datetime


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True)

    original: bytes
    key: bytes | None = None
    topic: str
    partition: int
    offset: int
    error_kind: str
    error_text: str
    message_id: str | None = None
    failed_at: datetime = Field(default_factory=utcnow)

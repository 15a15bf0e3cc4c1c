"""What flows between the stages: decoded items, dead letters and the offsets they cover."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime

from kafka import TopicPartition

from schemas.messages import DeadLetter, InboundMessage, Prediction


@dataclass(slots=True)
class Item:
    msg: InboundMessage
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    raw: bytes  # the record value as received, for the dead-letter topic


@dataclass(slots=True, frozen=True)
class Classified:
    """One message's classification on the hot path: schemas.messages.Prediction's fields, in its
    order, without building and validating a pydantic model per message. orjson writes it as the
    Prediction's JSON byte for byte (tests/daemon/test_kafka_sink.py)."""

    message_id: str
    label: str
    label_id: int
    scores: dict[str, float]
    confidence: float
    model_version: str
    adapter_version: str | None
    latency_ms: float
    source: str | None
    lang: str | None
    lang_supported: bool | None
    received_at: datetime
    classified_at: datetime

    def prediction(self) -> Prediction:
        """As the wire schema's model, off the hot path."""
        return Prediction(**{f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(slots=True)
class Batch:
    items: list[Item] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    # Next offset to commit per partition: every record below it is in ``items`` or ``dead``
    # (or in an earlier batch).
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    first_ms: float = 0.0
    # Filled by the inference worker, index-aligned with ``items`` (None: dead-lettered instead).
    predictions: list[Classified | None] = field(default_factory=list)
    # Checkpoint steps already done, so a retry after a failure resumes instead of re-sending.
    steps_done: set[str] = field(default_factory=set)
    # How many times the consumer had lost its partitions when these records were read: a batch
    # from before the latest loss is dropped at delivery (see Daemon._on_lost).
    losses: int = 0

    @classmethod
    def merge(cls, batches: list[Batch]) -> Batch:
        """Finished batches as one checkpoint (one transaction, one flush, one offset commit).

        Only for batches no checkpoint step has touched yet: ``steps_done`` starts empty."""
        if len(batches) == 1:
            return batches[0]
        out = cls(first_ms=batches[0].first_ms, losses=min(b.losses for b in batches))
        for b in batches:
            out.items += b.items
            out.dead += b.dead
            out.predictions += b.predictions
            for tp, o in b.offsets.items():
                if o > out.offsets.get(tp, -1):
                    out.offsets[tp] = o
        return out

    def __len__(self) -> int:
        return len(self.items) + len(self.dead)

    def cover(self, topic: str, partition: int, offset: int) -> None:
        tp = TopicPartition(topic, partition)
        if offset + 1 > self.offsets.get(tp, -1):
            self.offsets[tp] = offset + 1

    def only(self, partitions: set[TopicPartition]) -> Batch:
        """The part of this batch that belongs to ``partitions`` (after a rebalance)."""
        return Batch(
            items=[i for i in self.items if TopicPartition(i.topic, i.partition) in partitions],
            dead=[d for d in self.dead if TopicPartition(d.topic, d.partition) in partitions],
            offsets={tp: o for tp, o in self.offsets.items() if tp in partitions},
            first_ms=self.first_ms,
            predictions=[
                p for i, p in zip(self.items, self.predictions)
                if TopicPartition(i.topic, i.partition) in partitions
            ],
            steps_done=set(self.steps_done),
            losses=self.losses,
        )

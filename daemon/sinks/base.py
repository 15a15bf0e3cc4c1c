"""The base class of the sinks the checkpoint writes a batch to."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from kafka import ConsumerGroupMetadata, TopicPartition

from daemon.batch import Batch


@dataclass(frozen=True, slots=True)
class OffsetCommit:
    """Consumed offsets for a transactional sink to commit in the same transaction as the records."""

    offsets: dict[TopicPartition, int]
    group_metadata: ConsumerGroupMetadata
    # Runs once everything but the commit itself has been acknowledged; raising aborts the transaction.
    before_commit: Callable[[], None]


class Sink(ABC):
    name: ClassVar[str]
    # Whether ``write`` takes an OffsetCommit: records and consumed offsets in one transaction.
    transactional: bool = False

    @abstractmethod
    def write(self, batch: Batch, commit: OffsetCommit | None = None) -> None:
        """Write the batch durably, and with ``commit`` (transactional sinks only) its offsets in the
        same transaction; or raise SinkUnavailable (retryable) or SinkRejected. Safe to repeat."""

    @abstractmethod
    def close(self) -> None: ...

"""Stage 3 — micro-batcher: a batch closes at ``max_size`` messages or ``max_wait_ms`` after its first."""

from __future__ import annotations

import time

from daemon.batch import Batch, Item
from schemas.messages import DeadLetter
from schemas.settings import BatchSettings


class MicroBatcher:
    def __init__(self, settings: BatchSettings) -> None:
        self.max_size = settings.max_size
        self.max_wait = settings.max_wait_ms / 1000
        self._batch = Batch()

    def add(self, entry: Item | DeadLetter) -> None:
        if not len(self._batch):
            self._batch.first_ms = time.monotonic()
        if isinstance(entry, Item):
            self._batch.items.append(entry)
        else:
            self._batch.dead.append(entry)
        self._batch.cover(entry.topic, entry.partition, entry.offset)

    def due(self, now: float | None = None) -> bool:
        n = len(self._batch.items)
        if n >= self.max_size:
            return True
        if not len(self._batch):
            return False
        return (now or time.monotonic()) - self._batch.first_ms >= self.max_wait

    def wait_left(self) -> float | None:
        """Seconds until the open batch is due, or None when it is empty."""
        if not len(self._batch):
            return None
        return max(0.0, self.max_wait - (time.monotonic() - self._batch.first_ms))

    def take(self) -> Batch | None:
        if not len(self._batch):
            return None
        batch, self._batch = self._batch, Batch()
        return batch

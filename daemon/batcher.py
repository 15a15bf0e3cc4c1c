"""Stage 3 — micro-batcher: the open batch grows while the inference worker is busy.

A batch closes at ``max_size`` messages, or ``max_wait_ms`` after its first message *if the
inference worker is idle*. While the worker is busy, a batch past ``max_wait_ms`` keeps filling
(up to ``max_size``) instead of queueing behind it: under load batches grow with the arrival rate,
so a message waits for at most the batch in progress rather than for a queue of small batches.
"""

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

    def add(self, entry: Item | DeadLetter, now: float | None = None) -> None:
        if not len(self._batch):
            self._batch.first_ms = time.monotonic() if now is None else now
        if isinstance(entry, Item):
            self._batch.items.append(entry)
        else:
            self._batch.dead.append(entry)
        self._batch.cover(entry.topic, entry.partition, entry.offset)

    def full(self) -> bool:
        return len(self._batch.items) >= self.max_size

    def due(self, worker_idle: bool, now: float | None = None) -> bool:
        """Close now? Full batches always; otherwise past ``max_wait`` and only for an idle worker."""
        if self.full():
            return True
        if not worker_idle or not len(self._batch):
            return False
        return (time.monotonic() if now is None else now) - self._batch.first_ms >= self.max_wait

    def wait_left(self, now: float | None = None) -> float | None:
        """Seconds until the open batch reaches ``max_wait``, or None when it is empty."""
        if not len(self._batch):
            return None
        return max(0.0, self.max_wait - ((time.monotonic() if now is None else now) - self._batch.first_ms))

    def take(self) -> Batch | None:
        if not len(self._batch):
            return None
        batch, self._batch = self._batch, Batch()
        return batch

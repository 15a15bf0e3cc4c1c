from __future__ import annotations

from typing import Protocol

from daemon.batch import Batch


class Sink(Protocol):
    name: str

    def write(self, batch: Batch) -> None:
        """Write the batch durably or raise SinkUnavailable; must be safe to repeat."""
        ...

    def close(self) -> None: ...

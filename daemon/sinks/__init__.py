"""Stage 5 — sinks. Each takes a whole batch (``write(batch)``) and raises
:class:`daemon.errors.SinkUnavailable` when it cannot take it now."""

from daemon.sinks.base import Sink

__all__ = ["Sink"]

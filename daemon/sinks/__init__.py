"""Stage 5 — sinks. Each derives from :class:`Sink`, takes a whole batch and raises
:class:`daemon.errors.SinkUnavailable` when it cannot take it now."""

from daemon.sinks.base import OffsetCommit, Sink

__all__ = ["OffsetCommit", "Sink"]

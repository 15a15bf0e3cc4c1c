"""Is this consumer still a member of its group? Read from kafka-python's coordinator.

kafka-python has no public API for it, so this module is the one place that reads the pinned
client's private coordinator state. What it relies on is checked when it is imported (the classes)
and when a consumer is handed to it (the instances), so a kafka-python that changed fails at start
with one clear line instead of silently never refusing.
"""

from __future__ import annotations

import time

from kafka.coordinator.base import Generation

from daemon.errors import DaemonError

_UNSUPPORTED = ("this kafka-python ({what} missing) is not the one sentistream was built against: "
                "install the version pyproject.toml pins")
if not callable(getattr(Generation, "is_lost", None)):
    raise DaemonError(_UNSUPPORTED.format(what="Generation.is_lost"))


class StaleMembership(Exception):
    """The consumer's group generation is out of date: a commit now could move the group's offsets back."""


class Membership:
    """Whether a commit made now could carry this member's offsets past a group that moved on."""

    def __init__(self, consumer, session_timeout_ms: int) -> None:
        coordinator = getattr(consumer, "_coordinator", None)
        missing = [name for name, ok in (
            ("KafkaConsumer._coordinator", coordinator is not None),
            ("coordinator._generation", hasattr(coordinator, "_generation")),
            ("coordinator.heartbeat.last_receive", hasattr(getattr(coordinator, "heartbeat", None), "last_receive")),
        ) if not ok]
        if missing:
            raise DaemonError(_UNSUPPORTED.format(what=", ".join(missing)))
        self._coordinator = coordinator
        self._session_s = session_timeout_ms / 1000
        self._joined_at = -float("inf")

    def joined(self) -> None:
        """The group has just given this member its partitions (called from the assign callback)."""
        self._joined_at = time.monotonic()

    def stale(self) -> str | None:
        """Why this member's generation is known to be out of date, or None.

        - no generation: the broker answered a heartbeat or a commit with an unknown member or an
          old generation, and the next poll rejoins (the partitions are reported lost);
        - the broker confirmed nothing (a join, an answered heartbeat) for longer than the session
          timeout: it has evicted this member, which was paused or starved that long. The client's
          heartbeat thread finds out only a heartbeat interval later (it first rediscovers the
          coordinator, which restarts its own session clock), and until then keeps the old
          generation, which a broker without KIP-447 fencing accepts on a transactional commit.
        """
        c = self._coordinator
        if c._generation.is_lost():
            return "not a member of the consumer group (evicted, not joined again yet)"
        confirmed = max(c.heartbeat.last_receive, self._joined_at)
        if time.monotonic() - confirmed > self._session_s:
            return "no heartbeat answered within session_timeout_ms: evicted from the consumer group"
        return None

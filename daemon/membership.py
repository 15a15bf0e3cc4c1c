"""Is this consumer still a member of its group? Read from kafka-python's coordinator.

kafka-python has no public API for it: the coordinator's state is read through
:mod:`daemon.kafka_internals`, which checks that the pinned client has it.
"""

from __future__ import annotations

import time

from daemon.kafka_internals import GroupState


class Membership:
    """Whether a commit made now could carry this member's offsets past a group that moved on."""

    def __init__(self, consumer, session_timeout_ms: int) -> None:
        self._group = GroupState(consumer)
        self._session_s = session_timeout_ms / 1000
        self._joined_at = -float("inf")

    def joined(self) -> None:
        """The group has just given this member its partitions (called from the assign callback)."""
        self._joined_at = time.monotonic()

    def leader(self) -> bool:
        """Whether this member assigned the partitions in the group's last rebalance."""
        return self._group.is_leader()

    def stale(self) -> str | None:
        """Why this member's generation is known to be out of date, or None.

        - no generation: the broker answered a heartbeat or a commit with an unknown member or an
          old generation, and the next poll rejoins (the partitions are reported lost);
        - the broker confirmed nothing (a join, an answered heartbeat) for longer than the session
          timeout: it has evicted this member, which was paused or starved that long. The client's
          heartbeat loop finds out only a heartbeat interval later (it first rediscovers the
          coordinator, which restarts its own session clock), and until then keeps the old
          generation, which a broker without KIP-447 fencing accepts on a transactional commit.
        """
        if self._group.generation_lost():
            return "not a member of the consumer group (evicted, not joined again yet)"
        confirmed = max(self._group.last_heartbeat_answer(), self._joined_at)
        if time.monotonic() - confirmed > self._session_s:
            return "no heartbeat answered within session_timeout_ms: evicted from the consumer group"
        return None

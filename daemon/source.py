"""Stage 1 — source: a kafka-python consumer-group member with manual commits.

The consumer is not thread-safe; two threads take turns with it:
- the poll loop (daemon/app.py) makes every call but the listener's;
- kafka-python 3 runs the rebalance listener (revoke, assign, loss) on its IO thread, inside a
  ``poll()`` or the ``close()`` of the poll loop, which waits until the listener returns. The
  daemon's handlers run there, the revoke's flush of everything read included: they use the consumer
  and the daemon's state while the poll loop is parked. That thread is the consumer's event loop, so
  while a handler runs the consumer sends no heartbeat, and a blocking consumer call (``commit()``,
  ``poll()``) raises: the flush leaves idempotent delivery's offset commit to the listener, which
  awaits the coordinator's commit coroutine once the flush has returned, and the daemon does not
  poll while revoking. The flush still writes (the database and the producer have their own
  connections and IO thread), for at most ``shutdown_timeout_s``.
The health server's thread also reads ``assignment()``, which returns a copy of the assigned set.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, KafkaTimeoutError

from daemon.kafka_internals import ConsumerInternals
from daemon.membership import Membership
from schemas.db import describe_error
from schemas.settings import KafkaSettings

log = structlog.get_logger(__name__)
# The input topics' metadata normally arrives within milliseconds; past this (broker down, topic not
# created yet) the consumer goes on and finds the topics at its next metadata refresh.
METADATA_WAIT_S = 10.0
HEARTBEAT_INTERVAL_MS = 3_000


class _Listener(AsyncConsumerRebalanceListener):
    """Runs on the consumer's IO thread (see the module docstring): the daemon's handlers are plain
    calls, and the revoke hook awaits the coordinator's commit coroutine after its flush."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked):
        offsets = self._source.on_revoked(set(revoked))
        if offsets:
            await self._source.commit_from_listener(offsets)

    async def on_partitions_assigned(self, assigned):
        self._source.membership.joined()
        self._source.on_assigned(set(assigned))

    async def on_partitions_lost(self, lost):
        # Evicted: the group already gave these partitions away, so nothing may be committed.
        self._source.on_lost(set(lost))


class KafkaSource:
    def __init__(
        self,
        settings: KafkaSettings,
        on_revoked: Callable[[set[TopicPartition]], dict[TopicPartition, int]],
        on_assigned: Callable[[set[TopicPartition]], None],
        on_lost: Callable[[set[TopicPartition]], None],
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        """``on_revoked`` writes what was read and returns the offsets still to commit; ``stopping``
        ends the wait for the topics' metadata early."""
        self.settings = settings
        self.stopping = stopping
        self.on_revoked, self.on_assigned, self.on_lost = on_revoked, on_assigned, on_lost
        self.consumer = KafkaConsumer(
            **settings.client_config(),
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset=settings.auto_offset_reset,
            isolation_level="read_committed",
            max_poll_records=settings.max_poll_records,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            session_timeout_ms=settings.session_timeout_ms,
            # Kafka's default 3 s, but never above a third of a shorter session (kafka-python warns).
            heartbeat_interval_ms=min(HEARTBEAT_INTERVAL_MS, settings.session_timeout_ms // 3),
            max_poll_interval_ms=settings.max_poll_interval_ms,
        )
        self._internals = ConsumerInternals(self.consumer)
        self.membership = Membership(self.consumer, settings.session_timeout_ms)
        self.consumer.subscribe(list(settings.input_topics), listener=_Listener(self))
        self.await_metadata(METADATA_WAIT_S)

    def await_metadata(self, timeout_s: float) -> None:
        """Wait until the client knows the input topics' partitions, before the first poll joins the
        group. kafka-python can otherwise join first; as group leader it then assigns no partitions
        ("No partition metadata for topic") and needs a second rebalance once the metadata arrives.
        Like the client's own ``partitions_for_topic``, but bounded."""
        deadline = time.monotonic() + timeout_s
        while missing := [t for t in self.settings.input_topics if self._internals.known_partitions(t) is None]:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if self.stopping():
                return
            if left_ms <= 0:
                log.warning("input_topics_without_metadata", topics=missing, waited_s=timeout_s)
                return
            try:
                # In slices, so that a stop request is seen within a fraction of a second.
                self._internals.refresh_metadata(min(left_ms, 250))
            except KafkaTimeoutError:
                continue
            except KafkaError as e:
                log.warning("metadata_request_failed", error=describe_error(e))
                time.sleep(min(0.5, left_ms / 1000))

    def poll(self, timeout_ms: int) -> list[ConsumerRecord]:
        batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=self.settings.max_poll_records)
        return [r for records in batches.values() for r in records]

    def assignment(self) -> set[TopicPartition]:
        return set(self.consumer.assignment())

    def pause(self) -> None:
        self.consumer.pause(*self.consumer.assignment())

    def resume(self) -> None:
        self.consumer.resume(*self.consumer.paused())

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})

    async def commit_from_listener(self, offsets: dict[TopicPartition, int]) -> None:
        """``commit`` for the rebalance listener, on the IO thread (tests/daemon/test_rebalance.py)."""
        try:
            await self._internals.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
        except KafkaError as e:
            # The next owner re-reads these records; the idempotent writes make that harmless.
            log.warning("revoke_commit_failed", error=str(e)[:200])

    def lag(self) -> dict[TopicPartition, int]:
        """From the high watermarks the last fetches returned: no extra request."""
        out = {}
        for tp in self.consumer.assignment():
            hw = self.consumer.highwater(tp)
            pos = self.consumer.position(tp, timeout_ms=0) if hw is not None else None
            if pos is not None:
                out[tp] = max(0, hw - pos)
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` next (a local position change, no request)."""
        self.consumer.seek(tp, offset)

    def group_leader(self) -> bool:
        return self.membership.leader()

    def membership_stale(self) -> str | None:
        """Why this member's group generation is known to be out of date, or None."""
        return self.membership.stale()

    def group_metadata(self):
        return self.consumer.group_metadata()

    def close(self, timeout_s: float | None = None) -> None:
        """Leave the group; ``timeout_s`` bounds the wait for a broker that does not answer."""
        self.consumer.close(autocommit=False, timeout_ms=None if timeout_s is None else int(timeout_s * 1000))

"""Stage 6 — checkpoint: the one place that owns delivery.

For each batch, in order:
  1. write Postgres (one transaction, idempotent on message identity);
  2. transactional delivery: commit one Kafka transaction holding the output records, the
     dead letters and the consumed offsets — done;
     idempotent delivery: send and flush the output records and dead letters;
  3. idempotent delivery: commit the consumed offsets; while revoking, hand them to the revoke
     callback instead (``take_pending``), which commits them before the partitions are given up.
An offset is never committed before its message is durably written or dead-lettered. Each step
is recorded on the batch, so a retry after a failure resumes at the step that failed.

Offsets are committed only while the consumer can vouch for its group generation (see
``_check_membership``): a member evicted while paused would otherwise commit offsets the group has
since moved past.
"""

from __future__ import annotations

import time
from typing import Protocol

import structlog
from kafka import ConsumerGroupMetadata, TopicPartition
from kafka.errors import CommitFailedError, KafkaError

from daemon.batch import Batch
from daemon.errors import SinkUnavailable, StaleMembership
from daemon.metrics import Metrics
from daemon.sinks.base import OffsetCommit, Sink

log = structlog.get_logger(__name__)
# The steps recorded in ``Batch.steps_done``.
DB, KAFKA = "db", "kafka"


class GroupMember(Protocol):
    """What the checkpoint needs of the consumer (daemon.source.KafkaSource)."""

    def commit(self, offsets: dict[TopicPartition, int]) -> None: ...

    def membership_stale(self) -> str | None: ...

    def group_metadata(self) -> ConsumerGroupMetadata: ...


class Checkpoint:
    def __init__(self, db: Sink, out: Sink, source: GroupMember, metrics: Metrics) -> None:
        self.db, self.out, self.source, self.metrics = db, out, source, metrics
        # Every step that can fail exports its failure counter from the start, at 0: a series that
        # appears only on the first failure leaves the dashboard's panel and rate() without data.
        for step in (db.name, out.name, "group", "offsets"):
            metrics.sink_failures.labels(step)
        # Offsets written but not yet committed: a commit refused during a rebalance, or any step 3
        # while revoking. The revoke callback commits them before the partitions are given up.
        self._pending: dict[TopicPartition, int] = {}

    def commit(self, batch: Batch, *, revoking: bool = False) -> None:
        """Deliver ``batch`` from the first step it has not done. ``revoking``: called from the
        revoke callback, where the consumer cannot commit (step 3 keeps the offsets pending)."""
        t0 = time.perf_counter()
        # Step 1. The database.
        if DB not in batch.steps_done:
            self.db.write(batch)
            batch.steps_done.add(DB)
        # Step 2. Kafka: the output records, and in transactional delivery the offsets with them.
        if KAFKA not in batch.steps_done:
            self.out.write(batch, self._offset_commit(batch))
            batch.steps_done.add(KAFKA)
        # Step 3. Idempotent delivery: the offsets.
        if not self.out.transactional and batch.offsets:
            self._pending.update(batch.offsets)  # batches arrive in order: later offsets win
            if not revoking:
                self._check_membership()
                self._commit_pending()
        self.metrics.checkpoint_latency.observe(time.perf_counter() - t0)
        self._observe(batch)

    def take_pending(self) -> dict[TopicPartition, int]:
        """The offsets written but not committed, for the revoke callback to commit; forgets them."""
        offsets, self._pending = self._pending, {}
        return offsets

    def _offset_commit(self, batch: Batch) -> OffsetCommit | None:
        """What the transactional sink commits with the records; None in idempotent delivery."""
        if not self.out.transactional or not batch.offsets:
            return None
        self._check_membership()  # known stale already: not even the output records
        # The sink checks again just before EndTxn (see _check_membership).
        return OffsetCommit(batch.offsets, self.source.group_metadata(), self._check_membership)

    def _check_membership(self) -> None:
        """Refuse to commit offsets while the consumer's group generation is known to be stale.

        A real Kafka (2.5+) fences a stale generation itself; a broker without KIP-447 (tansu) takes
        the transactional commit, and the group's offsets move back. Retryable: the backoff loop
        polls, the poll rejoins the group and reports the partitions lost, and the daemon then drops
        this batch (it was read before the loss).

        Transactional delivery checks twice: before the transaction, and again once the records,
        AddOffsetsToTxn and TxnOffsetCommit are acknowledged, just before EndTxn is sent. What
        remains is a pause that starts after the second check and before EndTxn leaves the client,
        and outlasts the session timeout: EndTxn then commits offsets the group has moved past
        (a window of microseconds of client code; idempotent delivery: between the check and the
        OffsetCommit request). Only the broker's generation check (KIP-447) closes it; a real Kafka
        has it.
        """
        why = self.source.membership_stale()
        if why is not None:
            raise SinkUnavailable("group", StaleMembership(why))

    def _commit_pending(self) -> None:
        try:
            self.source.commit(self._pending)
        except CommitFailedError as e:
            # A rebalance is under way: the revoke callback commits these, or, if the partitions
            # went elsewhere, the new owner re-reads them and the idempotent writes absorb it.
            log.warning("offset_commit_deferred_by_rebalance", error=str(e)[:200])
            return
        except KafkaError as e:
            raise SinkUnavailable("offsets", e) from e
        self._pending.clear()

    def _observe(self, batch: Batch) -> None:
        now_ms = time.time() * 1000
        m = self.metrics
        for item, p in zip(batch.items, batch.predictions):
            if p is not None:
                m.classified.labels(p.label).inc()
                m.end_to_end_latency.observe(max(0.0, (now_ms - item.timestamp_ms) / 1000))
        for d in batch.dead:
            m.dead_lettered.labels(d.error_kind).inc()

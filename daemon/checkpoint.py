"""Stage 6 — checkpoint: the one place that owns delivery.

For each batch, in order:
  1. write Postgres (one transaction, idempotent on message identity);
  2. transactional delivery: commit one Kafka transaction holding the output records, the
     dead letters and the consumed offsets — done;
     idempotent delivery: send and flush the output records and dead letters;
  3. idempotent delivery: commit the consumed offsets.
An offset is never committed before its message is durably written or dead-lettered. Each step
is recorded on the batch, so a retry after a failure resumes at the step that failed.
"""

from __future__ import annotations

import time

import structlog
from kafka.errors import CommitFailedError, KafkaError

from daemon.batch import Batch
from daemon.errors import SinkUnavailable
from daemon.metrics import Metrics
from daemon.sinks.kafka import KafkaSink
from daemon.sinks.postgres import PostgresSink
from daemon.source import KafkaSource

log = structlog.get_logger(__name__)


class Checkpoint:
    def __init__(self, db: PostgresSink, out: KafkaSink, source: KafkaSource, metrics: Metrics) -> None:
        self.db, self.out, self.source, self.metrics = db, out, source, metrics

    def commit(self, batch: Batch) -> None:
        t0 = time.perf_counter()
        if "db" not in batch.steps_done:
            self.db.write(batch)  # 1
            batch.steps_done.add("db")
        if "kafka" not in batch.steps_done:
            self.out.write(batch, group_metadata=self._group_metadata())  # 2
            batch.steps_done.add("kafka")
        if not self.out.transactional and batch.offsets:
            self._commit_offsets(batch)  # 3
        self.metrics.checkpoint_latency.observe(time.perf_counter() - t0)
        self._observe(batch)

    def _group_metadata(self):
        return self.source.group_metadata() if self.out.transactional else None

    def _commit_offsets(self, batch: Batch) -> None:
        try:
            self.source.commit(batch.offsets)
        except CommitFailedError as e:
            # The group rebalanced and these partitions went elsewhere: the new owner re-reads
            # them, and the idempotent writes above make that replay harmless.
            log.warning("offset_commit_lost_to_rebalance", error=str(e)[:200])
        except KafkaError as e:
            raise SinkUnavailable("offsets", e) from e

    def _observe(self, batch: Batch) -> None:
        now_ms = time.time() * 1000
        m = self.metrics
        for item, p in zip(batch.items, batch.predictions):
            if p is not None:
                m.classified.labels(p.label).inc()
                m.end_to_end_latency.observe(max(0.0, (now_ms - item.timestamp_ms) / 1000))
        for d in batch.dead:
            m.dead_lettered.labels(d.error_kind).inc()

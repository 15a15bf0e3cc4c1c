"""The daemon: wires the stages and runs the poll loop.

The poll loop (this thread) owns the consumer: it reads, decodes, batches, hands batches to the
inference worker and checkpoints finished batches in order. Nothing is committed at read time.

The rebalance handlers (``_on_revoked``, ``_on_assigned``, ``_on_lost``) run on kafka-python's IO
thread, inside a poll (or the consumer's close) of the poll loop, which waits for them: the two never
run at once. The revoke's flush runs there too, checkpointing with ``revoking=True`` and without
polling (daemon/source.py says why).
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter

import structlog
from kafka import TopicPartition
from kafka.errors import KafkaError

from daemon.batch import Batch
from daemon.batcher import MicroBatcher
from daemon.checkpoint import Checkpoint
from daemon.decode import decode_record
from daemon.errors import DaemonError, ShutdownTimeout, SinkUnavailable
from daemon.health import HealthServer
from daemon.hotswap import AdapterWatcher, active_adapter, load_adapter_classifier
from daemon.metrics import Metrics
from daemon.sinks.kafka import KafkaSink
from daemon.sinks.postgres import PostgresSink
from daemon.source import KafkaSource
from daemon.worker import InferenceWorker
from models.base import Classifier
from schemas.db import describe_error
from schemas.settings import Settings

log = structlog.get_logger(__name__)
LIVENESS_S = 60.0
# Poll timeout while the inference worker is busy: bounds how late a finished batch is noticed.
# An empty kafka-python poll costs ~0.5 ms of CPU, so shorter would take cores from inference.
HOLD_POLL_MS = 10
# Closing the Kafka clients at exit: a live broker answers in milliseconds; a dead one is not waited for.
CLOSE_TIMEOUT_S = 2.0
# Until the database has answered once, the daemon asks it this often (for /readyz).
DB_PROBE_INTERVAL_S = 1.0


class Daemon:
    def __init__(self, settings: Settings, classifier: Classifier | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.db = PostgresSink(settings.database)
        active = None
        if settings.model.follow_registry:
            # An empty registry: serve the configured model (the default preset); the daemon never
            # writes the registry, `db upgrade` and the trainer register the shipped adapter.
            active = active_adapter(self.db.engine, settings.training.adapter_name)
        if classifier is None:
            from models.loading import load_classifier

            classifier = (load_adapter_classifier(settings, active) if active
                          else load_classifier(settings.model))
            # First torch call on the main thread, not the worker's: libgomp then spins far less
            # at its barriers, which keeps inference fast when other processes share the cores
            # (benchmarks/omp_spin.py).
            classifier.classify(["warm up"] * settings.batch.max_size)
        self.worker = InferenceWorker(classifier, settings.retry, self.metrics, settings.batch.queue_size)
        self.batcher = MicroBatcher(settings.batch)
        self.watcher = None
        if settings.model.follow_registry:
            self.watcher = AdapterWatcher(settings, self.db.engine, self.worker.swap_classifier,
                                          getattr(classifier, "adapter_version", None))
        self._stop = threading.Event()
        self._started = threading.Event()
        self._db_answered = threading.Event()
        self._in_backoff = False
        self._down_sink: str | None = None
        self._revoking = False
        self._closing = False
        # Times the group took this member's partitions away (evicted). Each batch carries the count
        # at the time its records were read; one from before the last loss is never delivered.
        self._losses = 0
        # Per partition, the offset from which records were read but not yet written: where a
        # partition kept across a rebalance is rewound when its read work is abandoned.
        self._unwritten_from: dict[TopicPartition, int] = {}
        self._deadline: float | None = None
        self._stop_deadline: float | None = None
        # A fatal error raised inside a rebalance callback, re-raised by the poll loop.
        self._fatal: DaemonError | None = None
        self._last_loop = time.monotonic()
        self.health: HealthServer | None = None
        self.source: KafkaSource | None = None
        self.out: KafkaSink | None = None
        self.checkpoint: Checkpoint | None = None
        self.processed = 0

    # Lifecycle
    def stop(self) -> None:
        """Ask the loop to finish the in-flight work, commit and return within ``shutdown_timeout_s``
        from the first call, retry loops included (signal-safe)."""
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.settings.shutdown_timeout_s
        self._stop.set()

    def is_live(self) -> bool:
        return time.monotonic() - self._last_loop < LIVENESS_S

    def is_ready(self) -> bool:
        """Started, the database has answered, partitions are assigned (the broker answered), and no
        sink is down."""
        return (self._started.is_set() and self._db_answered.is_set() and not self._in_backoff
                and not self._stop.is_set() and self.source is not None and bool(self.source.assignment()))

    def wait_started(self, timeout: float) -> bool:
        return self._started.wait(timeout)

    def run(self) -> int:
        """Run until :meth:`stop`; returns the process exit code."""
        s = self.settings
        obs = s.observability
        if obs.http_port:
            self.health = HealthServer(obs.http_host, obs.http_port, self.metrics.registry,
                                       self.is_live, self.is_ready)
            self.health.start()
        threading.Thread(target=self._await_database, name="database-probe", daemon=True).start()
        self.worker.start()
        if self.watcher:
            self.watcher.start()
        code = 1
        try:
            self._connect_kafka()
            log.info("daemon_started", topics=list(s.kafka.input_topics), group=s.kafka.group_id,
                     delivery=s.kafka.delivery, database=s.database.safe_url,
                     model=self.worker.classifier.model_version)
            self._started.set()
            code = self._serve()
        finally:
            self._close()
        log.info("daemon_stopped", exit_code=code, processed=self.processed)
        return code

    def _connect_kafka(self) -> None:
        s = self.settings
        try:
            self.out = KafkaSink(s.kafka)
            self.source = KafkaSource(s.kafka, self._on_revoked, self._on_assigned, self._on_lost,
                                      stopping=self._stop.is_set)
        except KafkaError as e:
            raise DaemonError(f"the Kafka broker at {s.kafka.bootstrap_servers} stopped answering during start-up "
                              f"({describe_error(e)}): check SENTISTREAM_KAFKA__BOOTSTRAP_SERVERS") from None
        self.checkpoint = Checkpoint(self.db, self.out, self.source, self.metrics)

    def _serve(self) -> int:
        """The loop, then the drain; 1 when unwritten batches were left at the shutdown deadline."""
        try:
            self._loop()
            self._flush_all(self.settings.shutdown_timeout_s)
            return 0
        except ShutdownTimeout as e:
            log.error("shutdown_incomplete", error=str(e))
            return 1

    def _await_database(self) -> None:
        """Readiness needs the database to have answered once since start."""
        while not self._stop.is_set():
            if self.db.ping():
                self._db_answered.set()
                return
            self._stop.wait(DB_PROBE_INTERVAL_S)

    # The poll loop
    def _loop(self) -> None:
        poll_ms = self.settings.kafka.poll_timeout_ms
        next_lag = 0.0
        while not self._stop.is_set():
            self._check_abort()
            self._last_loop = time.monotonic()
            # Hand a due batch to the worker before checkpointing, so inference overlaps the writes.
            self._submit_due()
            self._deliver_done()
            self._submit_due()
            self._poll(self._poll_timeout(poll_ms))
            self._submit_due()
            if self._last_loop >= next_lag:
                self._update_lag()
                next_lag = self._last_loop + 1.0

    def _poll_timeout(self, poll_ms: int) -> int:
        if not self.worker.outbox.empty():
            return 0  # finished while this loop was checkpointing
        if not self.worker.idle:
            # Finished batches wait to be checkpointed and a held batch waits for the worker to
            # go idle: both are noticed only between polls.
            return min(poll_ms, HOLD_POLL_MS)
        wait = self.batcher.wait_left()
        return poll_ms if wait is None else min(poll_ms, int(wait * 1000))

    def _submit_due(self) -> None:
        if self.batcher.due(self.worker.idle):
            self._submit(self.batcher.take())

    def _poll(self, timeout_ms: int) -> None:
        limit = self.settings.batch.max_text_chars
        records = self.source.poll(timeout_ms)
        if not records:
            return
        for topic, n in Counter(r.topic for r in records).items():
            self.metrics.consumed.labels(topic).inc(n)
        losses = self._losses
        for k, r in enumerate(records):
            if self._losses != losses:
                # Submitting a full batch can wait on a backoff whose poll found the partitions
                # lost: the rest of these records are from before the loss, and are read again.
                log.warning("stale_records_dropped", messages=len(records) - k)
                break
            self._unwritten_from.setdefault(TopicPartition(r.topic, r.partition), r.offset)
            self.batcher.add(decode_record(r, limit))
            if self.batcher.full():
                self._submit(self.batcher.take())
        self._submit_due()

    def _submit(self, batch: Batch | None) -> None:
        if batch is None:
            return
        # The open batch is emptied at a loss, so everything in it was read since the last one.
        batch.losses = self._losses
        # A full inference queue is backpressure: keep checkpointing finished batches meanwhile.
        while not self.worker.submit(batch, timeout=0.05):
            self._deliver_done()
            self._check_abort()

    def _deliver_done(self) -> None:
        # Every finished batch waiting is checkpointed at once, in order: under load, fewer and
        # larger transactions, flushes and offset commits.
        done = []
        while True:
            try:
                done.append(self.worker.outbox.get_nowait())
            except queue.Empty:
                break
        fresh = [b for b in done if not self._stale(b)]
        if len(fresh) < len(done):
            self._drop_stale(done)
        if fresh:
            self._deliver(Batch.merge(fresh))

    def _stale(self, batch: Batch) -> bool:
        return batch.losses < self._losses

    def _drop_stale(self, batches: list[Batch]) -> None:
        """Batches read before a loss are neither written nor committed: the group gave their
        partitions away, and whoever holds them now (this member again, perhaps) reads them from the
        group's committed offsets, which a commit of these could only move back."""
        stale = [b for b in batches if self._stale(b)]
        log.warning("stale_batches_dropped", batches=len(stale), messages=sum(len(b) for b in stale))

    def _deliver(self, batch: Batch) -> None:
        r = self.settings.retry
        delay = r.initial_backoff_ms / 1000
        while True:
            if self._stale(batch):
                self._drop_stale([batch])
                self._leave_backoff(recovered=False)
                return
            owned = self.source.assignment()
            if not set(batch.offsets) <= owned:
                # Partitions moved to another member while this batch waited: it re-reads them.
                batch = batch.only(owned)
            try:
                self.checkpoint.commit(batch, revoking=self._revoking)
                self.processed += len(batch)
                self._unwritten_from.update(batch.offsets)  # batches are delivered in read order
                self._leave_backoff(recovered=True)
                return
            except SinkUnavailable as e:
                self.metrics.sink_failures.labels(e.sink).inc()
                if not self._in_backoff:
                    log.warning("sink_unavailable_pausing", sink=e.sink, error=str(e)[:300])
                self._in_backoff = True
                self._down_sink = e.sink
                self.metrics.paused.set(1)
                self.source.pause()
                wait = e.retry_after if e.retry_after is not None else delay * random.uniform(0.5, 1.5)
                self._backoff_sleep(wait, batch)
                delay = min(delay * 2, r.max_backoff_ms / 1000)

    def _leave_backoff(self, recovered: bool) -> None:
        if not self._in_backoff:
            return
        self._in_backoff = False
        self.metrics.paused.set(0)
        self.source.resume()
        if recovered:
            log.info("sinks_recovered")

    def _backoff_sleep(self, seconds: float, batch: Batch) -> None:
        """Wait, polling to keep group membership; over early once ``batch`` is stale."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._stale(batch):
            self._check_abort()
            self._last_loop = time.monotonic()
            if not self._revoking:  # a rebalance callback must not poll again
                # Keep group membership; records from newly assigned partitions wait in the batcher.
                self._poll(0)
                self.source.pause()
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))

    def _check_abort(self) -> None:
        """Every wait and retry loop calls this: raises a fatal error from a rebalance callback, or
        ShutdownTimeout once the stop (or revoke) deadline has passed."""
        if self._fatal is not None:
            raise self._fatal
        now = time.monotonic()
        if any(d is not None and now > d for d in (self._deadline, self._stop_deadline)):
            why = f"{self._down_sink} unavailable" if self._in_backoff else "inference or delivery unfinished"
            raise ShutdownTimeout(
                f"stopped with batches not written ({why}) after shutdown_timeout_s "
                f"({self.settings.shutdown_timeout_s:g} s): their offsets stay uncommitted, so the next run "
                "reads them again")

    # Rebalance and shutdown
    def _on_revoked(self, revoked: set[TopicPartition]) -> dict[TopicPartition, int]:
        """Write everything read so far; return the offsets the callback must commit.

        Runs on the consumer's IO thread, inside a poll or the close of the poll loop, which waits."""
        if self._in_backoff or not revoked:
            return {}  # sinks are down: the uncommitted records go to the next owner
        if self._closing:
            return self.checkpoint.take_pending()  # the drain is over: commit what it wrote, nothing more
        log.info("partitions_revoked", partitions=len(revoked))
        self._revoking = True
        try:
            self._flush_all(self.settings.shutdown_timeout_s)
        except ShutdownTimeout:
            rewound = self._abandon_revoked(revoked)
            log.warning("revoke_flush_incomplete", rewound_partitions=rewound)
        except DaemonError as e:
            self._fatal = e  # the callback runs on the consumer's IO thread; the poll loop raises it
        finally:
            self._revoking = False
        return self.checkpoint.take_pending()

    def _on_lost(self, lost: set[TopicPartition]) -> None:
        """Evicted: nothing read so far may be written or committed. The batches in flight are
        dropped at delivery (older loss count) and the open batch here; the consumer forgets every
        position, so the partitions it is given next are read from the group's committed offsets.

        Runs on the consumer's IO thread, inside a poll of the poll loop, which waits for it: the
        batcher is not touched by both at once."""
        log.warning("partitions_lost", partitions=len(lost))
        self._forget_read()
        self._unwritten_from.clear()
        self.checkpoint.take_pending()

    def _forget_read(self) -> None:
        """Nothing read so far will be written: the batches in flight are dropped at delivery (older
        loss count), the open batch here."""
        self._losses += 1
        dropped = self.batcher.take()
        if dropped is not None:
            dropped.losses = self._losses - 1
            self._drop_stale([dropped])

    def _abandon_revoked(self, revoked: set[TopicPartition]) -> int:
        """The revoke's flush ran out of time: drop every unwritten batch, and rewind the revoked
        partitions to their first unwritten record. A partition assigned straight back keeps its
        position in kafka-python, which would otherwise skip the dropped records; one that goes to
        another member is read from the committed offsets there. Returns how many were rewound."""
        self._forget_read()
        self._leave_backoff(recovered=False)  # the batch it waited on is gone; the next one retries
        rewind = {tp: self._unwritten_from[tp] for tp in revoked if tp in self._unwritten_from}
        for tp, offset in rewind.items():
            self.source.seek(tp, offset)
        return len(rewind)

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        # A partition that was not kept is read from the group's committed offset: no unwritten record.
        self._unwritten_from = {tp: o for tp, o in self._unwritten_from.items() if tp in assigned}
        log.info("partitions_assigned", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned),
                 group_leader=self.source.group_leader())

    def _flush_all(self, timeout: float) -> None:
        """Finish every batch read so far: submit the open one, wait for the worker, checkpoint."""
        outer = self._deadline
        self._deadline = time.monotonic() + timeout if outer is None else outer
        try:
            self._submit(self.batcher.take())
            while not self.worker.wait_idle(0.05):
                self._deliver_done()
                self._check_abort()
            self._deliver_done()
        finally:
            self._deadline = outer

    def _update_lag(self) -> None:
        for tp, lag in self.source.lag().items():
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)

    def _close(self) -> None:
        self._closing = True
        self._stop.set()  # ends the database probe
        if self.watcher:
            self.watcher.stop()
        self.worker.stop()
        for closer in (
            (lambda: self.source.close(CLOSE_TIMEOUT_S)) if self.source else None,
            (lambda: self.out.close(CLOSE_TIMEOUT_S)) if self.out else None,
            self.db.close,
            self.health.close if self.health else None,
        ):
            if closer is None:
                continue
            try:
                closer()
            except Exception as e:  # noqa: BLE001 - closing must go on
                log.warning("close_failed", error=describe_error(e))

"""Evicted from the group: work read before the loss is neither written nor committed, and no offset is
committed while the consumer's generation is known to be stale.

The daemon's delivery path runs here with its real batcher, inference worker and checkpoint; the
consumer, the sinks and the model are fakes, because what is under test is the order of events
around a loss (a real group needs a paused process and takes seconds: tests/reliability/test_zombie.py).
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.coordinator.base import Generation
from kafka.coordinator.heartbeat import Heartbeat
from structlog.testing import capture_logs

from daemon.app import Daemon
from daemon.batch import Item
from daemon.checkpoint import Checkpoint
from daemon.errors import DaemonError, SinkUnavailable
from daemon.membership import Membership
from daemon.metrics import Metrics
from daemon.sinks.base import Sink
from models.base import BatchResult
from schemas.messages import InboundMessage
from schemas.settings import Settings

TP = TopicPartition("in", 0)


class FakeClassifier:
    labels = ("negative", "positive")
    model_version = "fake"

    def classify(self, texts):
        return BatchResult(np.tile(np.array([0.2, 0.8], dtype=np.float32), (len(texts), 1)), (None,) * len(texts))


class FakeSource:
    """The consumer as the daemon sees it; ``on_poll`` runs inside the next poll (as a rejoin does)."""

    def __init__(self) -> None:
        self.owned = {TP}
        self.stale: str | None = None
        self.on_poll: list = []
        self.paused = False
        self.commits: list[dict] = []

    def assignment(self):
        return set(self.owned)

    def poll(self, timeout_ms):
        if self.on_poll:
            self.on_poll.pop(0)()
        return []

    def pause(self):
        self.paused = True

    def resume(self):
        self.paused = False

    def membership_stale(self):
        return self.stale

    def group_leader(self):
        return False

    def group_metadata(self):
        return "metadata"

    def commit(self, offsets):
        self.commits.append(dict(offsets))


class FakeDb(Sink):
    name = "postgres"

    def __init__(self) -> None:
        self.written: list[list[int]] = []

    def write(self, batch, commit=None):
        self.written.append([i.offset for i in batch.items])

    def close(self):
        pass


class FakeOut(Sink):
    """The output sink; ``during`` runs while the transaction's records are being sent."""

    name = "kafka"

    def __init__(self, transactional: bool) -> None:
        self.transactional = transactional
        self.written: list[dict] = []
        self.during = lambda: None

    def write(self, batch, commit=None):
        self.during()
        if commit is not None:
            commit.before_commit()  # raising aborts the transaction: nothing written
        self.written.append(dict(batch.offsets))

    def close(self):
        pass


def item(offset: int) -> Item:
    return Item(InboundMessage(id=f"m{offset}", text="t"), TP.topic, TP.partition, offset, 0, None, b"t")


@pytest.fixture
def daemon():
    d = Daemon(Settings(), classifier=FakeClassifier())
    d.source = FakeSource()
    d.db = FakeDb()
    d.out = FakeOut(transactional=True)
    d.checkpoint = Checkpoint(d.db, d.out, d.source, d.metrics)
    d.worker.start()
    yield d
    d.worker.stop()


def read(d: Daemon, *offsets: int) -> None:
    for o in offsets:
        d.batcher.add(item(o))


def classify(d: Daemon) -> None:
    d._submit(d.batcher.take())
    assert d.worker.wait_idle(10)


def test_batch_read_before_a_loss_is_dropped_at_delivery(daemon):
    read(daemon, 0, 1, 2)
    classify(daemon)  # finished, waiting in the outbox to be checkpointed
    with capture_logs() as logs:
        daemon._on_lost({TP})
        # The partition comes back; the consumer reads it again from the group's committed offset.
        read(daemon, 0, 1)
        classify(daemon)
        daemon._deliver_done()
    assert daemon.db.written == [[0, 1]]
    assert daemon.out.written == [{TP: 2}]
    dropped = [e for e in logs if e["event"] == "stale_batches_dropped"]
    assert dropped == [{"event": "stale_batches_dropped", "batches": 1, "messages": 3, "log_level": "warning"}]


def test_loss_mid_batch_discards_the_open_batch(daemon):
    read(daemon, 10, 11)  # the open batch, not yet handed to the worker
    with capture_logs() as logs:
        daemon._on_lost({TP})
    assert daemon.batcher.take() is None
    assert [e["messages"] for e in logs if e["event"] == "stale_batches_dropped"] == [2]
    read(daemon, 7)  # from the committed offset
    classify(daemon)
    daemon._deliver_done()
    assert daemon.db.written == [[7]] and daemon.out.written == [{TP: 8}]


def test_stale_membership_holds_the_commit_until_the_loss_then_drops_the_batch(daemon):
    # Resumed after a pause: the consumer has not heard from the broker for a session timeout.
    daemon.source.stale = "no heartbeat answered within session_timeout_ms"

    def rejoin():  # the backoff loop's poll rejoins the group, which reports the partition lost
        daemon.source.stale = None
        daemon._on_lost({TP})

    daemon.source.on_poll = [lambda: None, rejoin]
    read(daemon, 0, 1)
    classify(daemon)
    t0 = time.monotonic()
    with capture_logs() as logs:
        daemon._deliver_done()
    # Nothing committed, the database write (idempotent) aside; the wait ended at the loss, not later.
    assert daemon.out.written == [] and daemon.db.written == [[0, 1]]
    assert time.monotonic() - t0 < 5
    events = [e["event"] for e in logs]
    assert events.count("sink_unavailable_pausing") == 1 and "stale_batches_dropped" in events
    assert [e["sink"] for e in logs if e["event"] == "sink_unavailable_pausing"] == ["group"]
    # Out of the backoff: the partitions are read again, and no recovery is claimed.
    assert not daemon._in_backoff and not daemon.source.paused and "sinks_recovered" not in events


def test_stale_membership_that_clears_without_a_loss_commits_the_batch(daemon):
    # The broker answered again in time (a slow heartbeat, not an eviction): the batch is still ours.
    daemon.source.stale = "no heartbeat answered within session_timeout_ms"
    daemon.source.on_poll = [lambda: setattr(daemon.source, "stale", None)]
    read(daemon, 0)
    classify(daemon)
    daemon._deliver_done()
    assert daemon.out.written == [{TP: 1}] and not daemon._in_backoff


@pytest.mark.parametrize("transactional", [True, False])
def test_checkpoint_refuses_to_commit_offsets_for_a_stale_member(transactional):
    source, db, out = FakeSource(), FakeDb(), FakeOut(transactional)
    cp = Checkpoint(db, out, source, Metrics())
    batch = SimpleNamespace(items=[item(0)], dead=[], predictions=[None], offsets={TP: 1}, steps_done=set())
    source.stale = "not a member of the consumer group"
    with pytest.raises(SinkUnavailable) as e:
        cp.commit(batch)
    assert e.value.sink == "group" and "not a member of the consumer group" in str(e.value)
    assert out.written == ([] if transactional else [{TP: 1}]) and source.commits == []
    source.stale = None
    cp.commit(batch)  # the retry resumes at the step that was refused
    assert db.written == [[0]]
    assert (out.written, source.commits) == (([{TP: 1}], []) if transactional else ([{TP: 1}], [{TP: 1}]))


def test_transactional_commit_checks_again_just_before_end_txn():
    # Evicted while the transaction's records were being sent: its offsets must not be committed.
    source, db, out = FakeSource(), FakeDb(), FakeOut(transactional=True)
    cp = Checkpoint(db, out, source, Metrics())
    batch = SimpleNamespace(items=[item(0)], dead=[], predictions=[None], offsets={TP: 1}, steps_done=set())
    out.during = lambda: setattr(source, "stale", "no heartbeat answered within session_timeout_ms")
    with pytest.raises(SinkUnavailable):
        cp.commit(batch)
    assert out.written == [] and "kafka" not in batch.steps_done


def coordinator(generation_id: int, member_id: str, session_timeout_ms: int) -> SimpleNamespace:
    hb = Heartbeat(group_id="g", session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=1)
    return SimpleNamespace(_generation=Generation(generation_id, member_id, "range"), heartbeat=hb, _is_leader=False)


def test_membership_reads_the_generation_and_the_last_answered_heartbeat():
    c = coordinator(3, "member-1", session_timeout_ms=200)
    m = Membership(SimpleNamespace(_coordinator=c), session_timeout_ms=200)
    m.joined()
    assert m.stale() is None
    time.sleep(0.3)
    # Rediscovering the coordinator restarts the client's own session clock: not an answer.
    c.heartbeat.reset_timeouts()
    assert "session_timeout_ms" in m.stale()
    c.heartbeat.received_heartbeat()
    assert m.stale() is None
    c._generation = Generation.NO_GENERATION  # the broker said: unknown member
    assert "not a member" in m.stale()


def test_membership_fails_clearly_on_a_kafka_python_without_the_coordinator_state():
    with pytest.raises(DaemonError, match="coordinator.heartbeat.last_receive"):
        Membership(SimpleNamespace(_coordinator=SimpleNamespace(_generation=None)), session_timeout_ms=1000)


def test_membership_finds_the_pinned_consumers_coordinator_state():
    # No broker behind it: the consumer is only constructed, never polled; api_version is given so
    # that construction does not probe the absent broker for it.
    c = KafkaConsumer(bootstrap_servers="127.0.0.1:1", group_id="g", api_version=(2, 5), enable_auto_commit=False)
    try:
        m = Membership(c, session_timeout_ms=6000)
        assert "not a member" in m.stale()  # never joined
        assert m.leader() is False
    finally:
        c.close(timeout_ms=100)


class RecordSource(FakeSource):
    """A source whose polls return the queued records; ``seek`` moves the read position back."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[int] = []
        self.seeks: list[tuple[TopicPartition, int]] = []

    def poll(self, timeout_ms):
        offsets, self.queued = self.queued, []
        return [SimpleNamespace(topic=TP.topic, partition=TP.partition, offset=o, timestamp=0, key=None,
                                value=f"text {o}".encode()) for o in offsets]

    def seek(self, tp, offset):
        self.seeks.append((tp, offset))


class FailingDb(FakeDb):
    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def write(self, batch, commit=None):
        if self.down:
            raise SinkUnavailable("postgres", ConnectionError("down"), retry_after=0.05)
        super().write(batch, commit)


def test_revoke_that_runs_out_of_time_rewinds_to_the_first_unwritten_record():
    # Non-default shutdown_timeout_s on purpose: the revoke's flush must run out of time quickly.
    d = Daemon(Settings(shutdown_timeout_s=0.3), classifier=FakeClassifier())
    d.source, d.db, d.out = RecordSource(), FailingDb(), FakeOut(transactional=True)
    d.checkpoint = Checkpoint(d.db, d.out, d.source, d.metrics)
    d.worker.start()
    try:
        d.source.queued = [0, 1]
        d._poll(0)
        classify(d)
        d._deliver_done()
        assert d.db.written == [[0, 1]]
        d.source.queued = [2, 3, 4]
        d._poll(0)
        classify(d)
        d.db.down = True  # the flush of the revoke cannot write 2-4
        with capture_logs() as logs:
            assert d._on_revoked({TP}) == {}
        assert d.source.seeks == [(TP, 2)]
        assert [e["rewound_partitions"] for e in logs if e["event"] == "revoke_flush_incomplete"] == [1]
        assert not d._in_backoff and not d.source.paused
        # The partition comes straight back and, rewound, is read again from 2.
        d._on_assigned({TP})
        d.db.down = False
        d.source.queued = [2, 3, 4]
        d._poll(0)
        classify(d)
        d._deliver_done()
        assert d.db.written == [[0, 1], [2, 3, 4]]
        assert d.out.written == [{TP: 2}, {TP: 5}]
    finally:
        d.worker.stop()

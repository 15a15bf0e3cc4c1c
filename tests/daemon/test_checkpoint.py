"""The checkpoint alone, with fake sinks and a fake consumer: both delivery modes, a failure at every
step, the retry resuming at the failed step, and the revoke's hand-over of the offsets.

Every fake records into one ``Ledger``, which checks at each offset commit that every record below
the committed offset is already in both sinks: no offset is ever committed before its records.
"""

from __future__ import annotations

from collections import Counter

import pytest
from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from structlog.testing import capture_logs

from daemon.batch import Batch, Item
from daemon.checkpoint import Checkpoint
from daemon.errors import SinkRejected, SinkUnavailable
from daemon.metrics import Metrics
from daemon.sinks.base import OffsetCommit, Sink
from schemas.messages import DeadLetter, InboundMessage

TP0, TP1 = TopicPartition("in", 0), TopicPartition("in", 1)
GROUP_METADATA = object()


class Ledger:
    """What reached each sink and which offsets were committed, in order; ``faults`` are one-shot."""

    def __init__(self) -> None:
        self.records: dict[str, set[tuple[TopicPartition, int]]] = {"db": set(), "kafka": set()}
        self.attempts: Counter[str] = Counter()
        self.commits: list[tuple[str, dict[TopicPartition, int]]] = []
        self.faults: dict[str, BaseException] = {}

    def attempt(self, step: str) -> None:
        self.attempts[step] += 1
        if step in self.faults:
            raise self.faults.pop(step)

    def write(self, sink: str, batch: Batch) -> None:
        self.records[sink] |= {(TopicPartition(i.topic, i.partition), i.offset) for i in batch.items}
        self.records[sink] |= {(TopicPartition(d.topic, d.partition), d.offset) for d in batch.dead}

    def commit(self, how: str, offsets: dict[TopicPartition, int]) -> None:
        for sink, written in self.records.items():
            for tp, end in offsets.items():
                unwritten = [o for o in range(end) if (tp, o) not in written]
                assert not unwritten, f"{how} commit of {tp}@{end} before {sink} has {unwritten}"
        self.commits.append((how, dict(offsets)))


class FakeDb(Sink):
    name = "postgres"

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def write(self, batch: Batch, commit: OffsetCommit | None = None) -> None:
        assert commit is None
        self.ledger.attempt("db")
        self.ledger.write("db", batch)

    def close(self) -> None:
        pass


class FakeKafka(Sink):
    """Idempotent: the records are out once written. Transactional: records and offsets become visible
    together at EndTxn, or not at all (abort)."""

    name = "kafka"

    def __init__(self, ledger: Ledger, transactional: bool) -> None:
        self.ledger = ledger
        self.transactional = transactional
        self.during_send = lambda: None

    def write(self, batch: Batch, commit: OffsetCommit | None = None) -> None:
        assert (commit is not None) == (self.transactional and bool(batch.offsets))
        self.ledger.attempt("kafka")
        self.during_send()
        if commit is not None:
            assert commit.group_metadata is GROUP_METADATA and commit.offsets == batch.offsets
            commit.before_commit()  # raising aborts: nothing becomes visible
            self.ledger.attempt("end_txn")
        self.ledger.write("kafka", batch)
        if commit is not None:
            self.ledger.commit("transaction", commit.offsets)

    def close(self) -> None:
        pass


class FakeSource:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.stale: str | None = None

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.ledger.attempt("offsets")
        self.ledger.commit("consumer", offsets)

    def membership_stale(self) -> str | None:
        return self.stale

    def group_metadata(self) -> object:
        return GROUP_METADATA


def make(transactional: bool) -> tuple[Checkpoint, Ledger, FakeSource, FakeKafka]:
    ledger = Ledger()
    source, out = FakeSource(ledger), FakeKafka(ledger, transactional)
    return Checkpoint(FakeDb(ledger), out, source, Metrics()), ledger, source, out


def batch(start: int, n: int) -> Batch:
    """``n`` records from ``start`` on partition 0 and the same on partition 1, the last one dead-lettered."""
    b = Batch()
    for tp in (TP0, TP1):
        for o in range(start, start + n):
            if tp == TP1 and o == start + n - 1:
                b.dead.append(DeadLetter(original=b"x", topic=tp.topic, partition=tp.partition, offset=o,
                                         error_kind="invalid_json", error_text="e"))
            else:
                b.items.append(Item(InboundMessage(id=f"{tp.partition}-{o}", text="t"), tp.topic, tp.partition,
                                    o, 0, None, b"t"))
                b.predictions.append(None)
            b.cover(tp.topic, tp.partition, o)
    return b


MODES = {"idempotent": False, "transactional": True}


@pytest.mark.parametrize("mode", MODES)
def test_delivers_in_step_order(mode):
    cp, ledger, _, _ = make(MODES[mode])
    cp.commit(batch(0, 3))
    how = "transaction" if MODES[mode] else "consumer"
    assert ledger.commits == [(how, {TP0: 3, TP1: 3})]
    assert ledger.attempts == Counter({"db": 1, "kafka": 1, "end_txn" if MODES[mode] else "offsets": 1})
    assert cp.take_pending() == {}


def db_down(ledger, source, out):
    ledger.faults["db"] = SinkUnavailable("postgres", ConnectionError("down"))


def kafka_down(ledger, source, out):
    ledger.faults["kafka"] = SinkUnavailable("kafka", KafkaError("broker down"))


def member_stale(ledger, source, out):
    source.stale = "not a member of the consumer group"


def commit_fails(ledger, source, out):
    ledger.faults["offsets"] = KafkaError("coordinator not available")


def stale_before_end_txn(ledger, source, out):
    # Evicted while the transaction's records were being sent: the check just before EndTxn refuses.
    out.during_send = lambda: setattr(source, "stale", "no heartbeat answered within session_timeout_ms")


def end_txn_fails(ledger, source, out):
    ledger.faults["end_txn"] = SinkUnavailable("kafka", KafkaError("EndTxn timed out"))


# (mode, fault, the sink named by SinkUnavailable, attempts per step over the failure and the retry)
STEP_FAILURES = [
    ("idempotent", db_down, "postgres", {"db": 2, "kafka": 1, "offsets": 1}),
    ("idempotent", kafka_down, "kafka", {"db": 1, "kafka": 2, "offsets": 1}),
    ("idempotent", member_stale, "group", {"db": 1, "kafka": 1, "offsets": 1}),
    ("idempotent", commit_fails, "offsets", {"db": 1, "kafka": 1, "offsets": 2}),
    ("transactional", db_down, "postgres", {"db": 2, "kafka": 1, "end_txn": 1}),
    ("transactional", kafka_down, "kafka", {"db": 1, "kafka": 2, "end_txn": 1}),
    ("transactional", member_stale, "group", {"db": 1, "kafka": 1, "end_txn": 1}),
    ("transactional", stale_before_end_txn, "group", {"db": 1, "kafka": 2, "end_txn": 1}),
    ("transactional", end_txn_fails, "kafka", {"db": 1, "kafka": 2, "end_txn": 2}),
]


@pytest.mark.parametrize(("mode", "fault", "sink", "attempts"), STEP_FAILURES,
                         ids=[f"{m}-{f.__name__}" for m, f, _, _ in STEP_FAILURES])
def test_failure_at_each_step_then_the_retry_resumes_there(mode, fault, sink, attempts):
    cp, ledger, source, out = make(MODES[mode])
    b = batch(0, 2)
    fault(ledger, source, out)
    with pytest.raises(SinkUnavailable) as e:
        cp.commit(b)
    assert e.value.sink == sink
    assert ledger.commits == []
    # The sink is back, the member rejoined: the same batch again, from the step that failed.
    source.stale, out.during_send = None, lambda: None
    cp.commit(b)
    assert ledger.commits == [("transaction" if MODES[mode] else "consumer", {TP0: 2, TP1: 2})]
    assert ledger.attempts == Counter(attempts)


@pytest.mark.parametrize("mode", MODES)
def test_a_refused_batch_stops_before_any_later_step(mode):
    cp, ledger, _, _ = make(MODES[mode])
    ledger.faults["db"] = SinkRejected("the database refused a batch")
    with pytest.raises(SinkRejected):
        cp.commit(batch(0, 2))
    assert ledger.commits == [] and ledger.attempts == Counter({"db": 1})


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_batch_leaves_the_earlier_batches_committed_and_its_own_offsets_not(mode):
    cp, ledger, _, _ = make(MODES[mode])
    cp.commit(batch(0, 2))
    ledger.faults["kafka"] = SinkUnavailable("kafka", KafkaError("broker down"))
    with pytest.raises(SinkUnavailable):
        cp.commit(batch(2, 2))
    assert [offsets for _, offsets in ledger.commits] == [{TP0: 2, TP1: 2}]
    assert cp.take_pending() == {}  # written to the database only: nothing to hand over


def test_commit_refused_by_a_rebalance_is_deferred_to_the_next_commit():
    cp, ledger, _, _ = make(transactional=False)
    ledger.faults["offsets"] = CommitFailedError("rebalance in progress")
    with capture_logs() as logs:
        cp.commit(batch(0, 2))  # delivered: the records are written, only the commit waits
    assert [e["event"] for e in logs] == ["offset_commit_deferred_by_rebalance"]
    assert ledger.commits == []
    cp.commit(batch(2, 3))
    assert ledger.commits == [("consumer", {TP0: 5, TP1: 5})]  # later offsets win
    assert cp.take_pending() == {}


def test_commit_refused_by_a_rebalance_is_handed_to_the_revoke():
    cp, ledger, _, _ = make(transactional=False)
    ledger.faults["offsets"] = CommitFailedError("rebalance in progress")
    cp.commit(batch(0, 2))
    assert cp.take_pending() == {TP0: 2, TP1: 2}
    assert cp.take_pending() == {}  # handed over once


def test_revoking_keeps_the_idempotent_offsets_pending_for_the_revoke_callback():
    cp, ledger, _, _ = make(transactional=False)
    cp.commit(batch(0, 2), revoking=True)
    cp.commit(batch(2, 2), revoking=True)
    assert ledger.commits == [] and ledger.attempts["offsets"] == 0
    assert ledger.records["db"] == ledger.records["kafka"] == {(tp, o) for tp in (TP0, TP1) for o in range(4)}
    # The callback commits what take_pending hands it; the ledger checks everything below is written.
    offsets = cp.take_pending()
    assert offsets == {TP0: 4, TP1: 4}
    ledger.commit("revoke callback", offsets)


def test_revoking_a_failed_step_resumes_and_still_hands_the_offsets_over():
    cp, ledger, _, _ = make(transactional=False)
    b = batch(0, 2)
    ledger.faults["kafka"] = SinkUnavailable("kafka", KafkaError("broker down"))
    with pytest.raises(SinkUnavailable):
        cp.commit(b, revoking=True)
    assert cp.take_pending() == {}  # nothing written to Kafka yet: nothing to hand over
    cp.commit(b, revoking=True)
    assert ledger.attempts == Counter({"db": 1, "kafka": 2})
    assert cp.take_pending() == {TP0: 2, TP1: 2}


def test_revoking_in_transactional_delivery_commits_in_the_transaction():
    cp, ledger, _, _ = make(transactional=True)
    cp.commit(batch(0, 2), revoking=True)
    assert ledger.commits == [("transaction", {TP0: 2, TP1: 2})]
    assert cp.take_pending() == {}


@pytest.mark.parametrize("mode", MODES)
def test_a_batch_without_offsets_commits_nothing(mode):
    cp, ledger, _, _ = make(MODES[mode])
    cp.commit(Batch())
    assert ledger.commits == [] and ledger.attempts == Counter({"db": 1, "kafka": 1})


def test_every_failure_counter_is_exported_at_zero_before_any_failure():
    cp, *_ = make(transactional=True)
    exported = {s.labels["sink"]: s.value for m in cp.metrics.registry.collect() if m.name == "sentistream_sink_failures"
                for s in m.samples if s.name.endswith("_total")}
    assert exported == {"postgres": 0.0, "kafka": 0.0, "group": 0.0, "offsets": 0.0}

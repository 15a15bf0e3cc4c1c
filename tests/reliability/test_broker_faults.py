"""Broker faults from the mock broker's fault injection: request errors, brokers down, leader moves.

These run on the embedded mock broker only (``mock_broker``): no other broker injects faults. It
has no transaction semantics, so the daemon runs with idempotent delivery:
the tables stay exactly-once (idempotent inserts), the output topic is at-least-once. A duplicate
on the output topic comes from re-reading a record whose offset commit was lost (e.g. the group
dropped the member while the brokers were down) or from re-sending a batch whose send failed, so
the test asserts: output records <= records consumed + failed Kafka sink writes x the most records
one write carries ((batch.queue_size + 1) x batch.max_size: finished batches are written together).
"""

from __future__ import annotations

import time

import pytest

from tests.daemon.harness import (
    DaemonThread,
    committed_and_end,
    count,
    make_settings,
    make_topics,
    produce,
    read_topic,
    tweet,
    wait_for,
)

# Three brokers, so leaders can move and a broker can be down while others serve.
pytestmark = [pytest.mark.kafka, pytest.mark.mock_broker(brokers=3)]

PRODUCE, FETCH, OFFSET_COMMIT, INIT_PRODUCER_ID = 0, 1, 8, 22
NOT_LEADER, REQUEST_TIMED_OUT, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR = 6, 7, 15, 16
WAVE = 300
BATCH = 16


def _errors(api: int, *codes: int):
    return lambda c, t: c.embedded.push_request_errors(api, *codes)


def _brokers_down_for(seconds: float):
    def fault(c, t):
        for b in (1, 2, 3):
            c.embedded.set_broker_down(b)
        time.sleep(seconds)
        for b in (1, 2, 3):
            c.embedded.set_broker_up(b)
    return fault


def _move_leaders(c, t):
    for topic in (t["input"], t["output"]):
        for p in range(3):
            c.embedded.set_partition_leader(topic, p, 1 + (p + 1) % 3)


FAULTS = {
    "produce_errors": _errors(PRODUCE, *[NOT_LEADER, REQUEST_TIMED_OUT] * 4),
    "fetch_errors": _errors(FETCH, *[NOT_LEADER, REQUEST_TIMED_OUT] * 4),
    "offset_commit_errors": _errors(OFFSET_COMMIT, *[COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, REQUEST_TIMED_OUT] * 2),
    # kafka-python's idempotent (non-transactional) producer hangs for good on a coordinator error
    # here (it looks up a transaction coordinator it does not have); a real broker answers this
    # request without a coordinator, so inject the retriable error it can return.
    "init_producer_id_errors": _errors(INIT_PRODUCER_ID, REQUEST_TIMED_OUT, REQUEST_TIMED_OUT),
    "all_brokers_down_5s": _brokers_down_for(5.0),
    "leader_change": _move_leaders,
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_daemon_recovers_from_broker_fault(fault, broker, topic_names, database_url, tiny_bert_dir):
    topics = make_topics(broker, topic_names, partitions=3)
    settings = make_settings(broker, database_url, topics, tiny_bert_dir,
                             kafka={"request_timeout_ms": 5000},
                             batch={"max_size": BATCH, "max_wait_ms": 20})
    rows = lambda: count(database_url, "select count(*) from predictions")  # noqa: E731
    n = 2 * WAVE
    produce(broker, topics["input"], (tweet(i) for i in range(WAVE)))
    if fault == "init_producer_id_errors":  # the daemon's producer asks for its id at start-up
        FAULTS[fault](broker, topics)
    with DaemonThread(settings) as d:
        assert wait_for(lambda: rows() >= WAVE // 2, timeout=60)
        # Mid-stream: the second wave is in the topic when the fault hits.
        produce(broker, topics["input"], (tweet(i) for i in range(WAVE, n)))
        if fault != "init_producer_id_errors":
            FAULTS[fault](broker, topics)
        assert wait_for(lambda: rows() >= n, timeout=120), f"{rows()} of {n} rows"
        assert wait_for(lambda: sum(v or 0 for v in committed_and_end(
            broker, topics["group"], topics["input"])[0].values()) >= n, timeout=60)
        kafka_failures = d.daemon.metrics.sink_failures.labels("kafka")._value.get()
        consumed = d.daemon.metrics.consumed.labels(topics["input"])._value.get()
        assert d.thread.is_alive() and d.stop() == 0

    # Tables: exactly once.
    assert count(database_url, "select count(*) from predictions") == n
    assert count(database_url, "select count(distinct message_id) from predictions") == n
    committed, end = committed_and_end(broker, topics["group"], topics["input"])
    assert committed == end
    # Output topic: nothing lost; duplicates only from re-sent batches.
    out = read_topic(broker, topics["output"], n)
    ids = [r.key.decode() for r in out]
    assert set(ids) == {f"m{i}" for i in range(n)}
    # One checkpoint write carries every finished batch waiting: at most queue_size + 1 of them.
    per_write = (settings.batch.queue_size + 1) * BATCH
    assert len(ids) <= consumed + kafka_failures * per_write, (len(ids), consumed, kafka_failures)

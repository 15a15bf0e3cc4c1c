"""The daemon as operators run it: a `sentistream run` subprocess, killed and stopped."""

from __future__ import annotations

import random
import signal
import time

import pytest

from tests.daemon.harness import (
    committed_and_end, count, daemon_env, finish_stream, log_of, make_topics, produce, read_topic, start, tweet,
    wait_for,
)

pytestmark = pytest.mark.kafka


def test_sigkill_three_times_loses_and_duplicates_nothing(broker, topic_names, database_url, tiny_bert_dir):
    topics = make_topics(broker, topic_names)
    n = 5000
    produce(broker, topics["input"], (tweet(i) for i in range(n)))
    env = daemon_env(broker, database_url, topics, tiny_bert_dir)
    rows = lambda: count(database_url, "select count(*) from predictions")  # noqa: E731
    rng = random.Random(7)
    kills = 0
    progress = []
    while kills < 3:
        proc = start(env)
        before = rows()
        # Kill at a random point while it is writing: after a random number of new rows.
        target = before + rng.randint(50, 400)
        assert wait_for(lambda: rows() >= target or proc.poll() is not None, timeout=120, interval=0.02), log_of(proc)
        assert proc.poll() is None, log_of(proc)
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
        progress.append(rows())
    assert progress[-1] < n, "stream finished before the third kill; the test must kill mid-stream"
    finish_stream(env, rows, n, broker, topics, timeout=180)
    assert count(database_url, "select count(*) from predictions") == n
    assert count(database_url, "select count(distinct message_id) from predictions") == n
    ids = count(database_url, "select count(*) from predictions where message_id ~ '^m[0-9]+$' "
                              f"and substr(message_id, 2)::int < {n}")
    assert ids == n
    # The output topic: every id at least once. Exactly once (the killed processes' transactions
    # aborted) only where read_committed readers are spared aborted records: a real Kafka, not tansu.
    keys = [r.key.decode() for r in read_topic(broker, topics["output"], n)]
    assert set(keys) == {f"m{i}" for i in range(n)}
    if broker.filters_aborted:
        assert len(keys) == n


def test_sigterm_finishes_in_flight_work_and_exits_zero(broker, topic_names, database_url, tiny_bert_dir):
    topics = make_topics(broker, topic_names)
    n = 3000
    produce(broker, topics["input"], (tweet(i) for i in range(n)))
    # Large batches and a slow queue keep work in flight at the moment the signal lands.
    env = daemon_env(broker, database_url, topics, tiny_bert_dir,
                     SENTISTREAM_BATCH__MAX_SIZE="256", SENTISTREAM_BATCH__MAX_WAIT_MS="200")
    proc = start(env)
    assert wait_for(lambda: count(database_url, "select count(*) from predictions") >= 300
                    or proc.poll() is not None, timeout=120), log_of(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, log_of(proc)
    written = count(database_url, "select count(*) from predictions")
    committed, end = committed_and_end(broker, topics["group"], topics["input"])
    # Everything read was written, and the committed offsets cover exactly what was written.
    assert sum(v or 0 for v in committed.values()) == written, (committed, end, written)
    assert 0 < written <= n
    # A restart picks up exactly where the clean stop left off. More records arrive meanwhile: the
    # first process may have drained the topic, and the restart must be seen working before SIGINT.
    more = 500
    produce(broker, topics["input"], (tweet(i) for i in range(n, n + more)))
    proc = start(env)
    assert wait_for(lambda: count(database_url, "select count(*) from predictions") >= n + more,
                    timeout=120), log_of(proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, log_of(proc)
    assert count(database_url, "select count(*) from predictions") == n + more
    assert count(database_url, "select count(distinct message_id) from predictions") == n + more
    committed, end = committed_and_end(broker, topics["group"], topics["input"])
    assert committed == end

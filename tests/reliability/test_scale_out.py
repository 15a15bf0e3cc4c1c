"""Scale-out: three `sentistream run` replicas in one group share a 6-partition topic; one is
SIGKILLed mid-stream and restarted. Default settings, the default transactional id included: the
replicas run on one host, so they must not fence each other, and the restarted one must take the
killed one's transactional id (which aborts the transaction it left open).

Checked: every id exactly once in `predictions`; every id on the output topic (at least once on
tansu, whose `read_committed` readers also get aborted records; exactly once on a real Kafka); the
group's committed offsets equal the end offsets of every partition.
"""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.daemon.harness import committed_and_end, count, log_of, make_topics, read_topic, start, tweet, wait_for
from tests.reliability.streams import PacedProducer
from tests.reliability.replicas import events, holds_partitions, scale_out_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 20_000
PARTITIONS = 6
REPLICAS = 3


def transactional_id(proc: subprocess.Popen) -> str | None:
    got = events(proc, "transactional_producer")
    return got[-1]["transactional_id"] if got else None


def test_three_replicas_one_killed_and_restarted(broker, topic_names, database_url, tiny_bert_dir):
    topics = make_topics(broker, topic_names, partitions=PARTITIONS)
    env = scale_out_env(broker, database_url, topics, tiny_bert_dir)
    rows = lambda: count(database_url, "select count(*) from predictions")  # noqa: E731

    replicas = [start(env) for _ in range(REPLICAS)]
    logs = lambda: "\n---\n".join(log_of(p) for p in replicas)  # noqa: E731
    assert wait_for(lambda: all(holds_partitions(p) for p in replicas), timeout=120), logs()
    ids = [transactional_id(p) for p in replicas]
    assert None not in ids and len(set(ids)) == REPLICAS, ids

    stream = PacedProducer(broker, topics["input"], [tweet(i) for i in range(N)], rate=400)
    stream.start()
    # Mid-stream: a quarter of the rows written, the producer still sending.
    assert wait_for(lambda: rows() >= N // 4, timeout=180), logs()
    victim = next(p for p in replicas if holds_partitions(p))
    victim_id = transactional_id(victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    assert stream.sent < N, "the stream ended before the kill; the test must kill mid-stream"
    restarted = start(env)
    replicas[replicas.index(victim)] = restarted
    assert wait_for(lambda: holds_partitions(restarted), timeout=120), logs()
    assert stream.sent < N, "the stream ended before the restarted replica rejoined"
    # The restart leased the killed replica's slot: the same transactional id.
    assert transactional_id(restarted) == victim_id, (victim_id, transactional_id(restarted))

    stream.finish(timeout=120)
    assert wait_for(lambda: rows() >= N, timeout=300), f"{rows()} of {N}\n{logs()}"
    assert wait_for(lambda: (lambda c, e: c == e)(*committed_and_end(broker, topics["group"], topics["input"])),
                    timeout=120), f"{committed_and_end(broker, topics['group'], topics['input'])}\n{logs()}"
    assert not any("can no longer write" in log_of(p, tail=None) for p in replicas), logs()  # ProducerFenced

    for p in replicas:
        p.send_signal(signal.SIGTERM)
    for p in replicas:
        assert p.wait(60) == 0, log_of(p)

    assert count(database_url, "select count(*) from predictions") == N
    assert count(database_url, "select count(distinct message_id) from predictions") == N
    committed, end = committed_and_end(broker, topics["group"], topics["input"])
    assert committed == end and sum(end.values()) == N

    out = read_topic(broker, topics["output"], expect=N, timeout=120)
    keys = [r.key.decode() for r in out]
    assert set(keys) == {f"m{i}" for i in range(N)}
    if broker.filters_aborted:  # a real Kafka: read_committed hides aborted attempts
        assert len(keys) == N

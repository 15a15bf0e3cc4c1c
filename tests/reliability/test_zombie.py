"""A zombie replica: paused (SIGSTOP) past its session timeout with batches in flight, its partitions
go to the other replica, which writes everything; then it is resumed (SIGCONT).

What is asserted, precisely:
- while the zombie is paused, the other replica writes every row; on a real Kafka it also commits
  every offset then. Tansu applies a transaction's consumer offsets only once every open transaction
  that wrote earlier to the same output partitions has ended, and never times one out: when SIGSTOP
  catches the zombie inside a transaction (about 1 run in 10), the other replica's offsets wait for
  the resume, where the zombie aborts (``Broker.open_txn_holds_offsets``);
- the resumed replica commits nothing it read before the pause: the group's committed offsets,
  sampled every 50 ms from before the resume until the group is stable again, never move back (a
  zombie's commit would: its batches are older), and end at the end offsets;
- it says so in one line (`partitions_lost`), rejoins the group and takes work again, and exits 0 on
  SIGTERM at the end;
- `predictions` holds every id exactly once;
- the output topic holds every id. On tansu only at least once: its `read_committed` readers also get
  aborted records, so the zombie's aborted attempts cannot be told from committed duplicates there.
  On a real Kafka (KAFKA_BOOTSTRAP_SERVERS), which filters them, exactly once per id.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.daemon.harness import (committed_and_end, count, end_offsets, log_of, make_topics, read_topic, start,
                                  tweet, wait_for)
from tests.reliability.streams import PacedProducer
from tests.reliability.replicas import events, holds_partitions, scale_out_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 4


class CommittedSampler(threading.Thread):
    """Reads the group's committed offsets every ``interval`` s until stopped."""

    def __init__(self, broker, group: str, topic: str, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(**broker.client_kwargs, group_id=group, enable_auto_commit=False)
        self.parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        self.interval = interval
        self.samples: list[dict[int, int | None]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.samples.append({tp.partition: self.consumer.committed(tp) for tp in self.parts})
            self._done.wait(self.interval)

    def stop(self) -> list[dict[int, int | None]]:
        self._done.set()
        self.join(30)
        self.consumer.close()
        return self.samples


def offsets_at_end(broker, topics: dict[str, str]) -> bool:
    committed, end = committed_and_end(broker, topics["group"], topics["input"])
    return committed == end


def moves_back(samples: list[dict[int, int | None]]) -> list[tuple[int, int, int | None]]:
    """(partition, offset, the next sample's offset) wherever a committed offset went down or away."""
    return [(p, a[p], b[p]) for a, b in zip(samples, samples[1:]) for p in a
            if a[p] is not None and (b[p] is None or b[p] < a[p])]


def all_partitions(proc) -> bool:
    assigned = events(proc, "partitions_assigned")
    return bool(assigned) and len(assigned[-1]["partitions"]) == PARTITIONS


def test_paused_replica_is_fenced_and_rejoins(broker, topic_names, database_url, tiny_bert_dir):
    topics = make_topics(broker, topic_names, partitions=PARTITIONS)
    env = scale_out_env(broker, database_url, topics, tiny_bert_dir)
    rows = lambda: count(database_url, "select count(*) from predictions")  # noqa: E731
    zombie, other = start(env), start(env)
    logs = lambda: f"zombie:\n{log_of(zombie)}\n---\nother:\n{log_of(other)}"  # noqa: E731
    assert wait_for(lambda: holds_partitions(zombie) and holds_partitions(other), timeout=120), logs()

    n1 = 4000
    stream = PacedProducer(broker, topics["input"], [tweet(i) for i in range(n1)], rate=400)
    stream.start()
    # Paused while busy: records read and not yet committed, since the stream keeps coming.
    assert wait_for(lambda: rows() >= 600, timeout=120, interval=0.02), logs()
    zombie.send_signal(signal.SIGSTOP)
    try:
        # Its session times out and the other replica is given every partition.
        assert wait_for(lambda: all_partitions(other), timeout=60), logs()
        stream.finish(timeout=120)
        assert wait_for(lambda: rows() >= n1, timeout=120), f"{rows()} of {n1}\n{logs()}"
        if not broker.open_txn_holds_offsets:
            assert wait_for(lambda: offsets_at_end(broker, topics), timeout=60), \
                f"committed, end: {committed_and_end(broker, topics['group'], topics['input'])}\n{logs()}"
        sampler = CommittedSampler(broker, topics["group"], topics["input"])
        sampler.start()
    finally:
        zombie.send_signal(signal.SIGCONT)

    # Resumed: it finds itself out of the group, drops what it held and rejoins.
    assert wait_for(lambda: zombie.poll() is not None or (events(zombie, "partitions_lost") and holds_partitions(zombie)
                                                          and holds_partitions(other)), timeout=90), logs()
    assert wait_for(lambda: offsets_at_end(broker, topics), timeout=60), \
        f"committed, end: {committed_and_end(broker, topics['group'], topics['input'])}\n{logs()}"
    time.sleep(3)  # a late commit of the zombie would land here
    samples = sampler.stop()
    assert len(samples) >= 40, samples  # the whole resume was watched, not a moment of it
    assert zombie.poll() is None, f"exited {zombie.returncode}\n{logs()}"
    assert len(events(zombie, "partitions_lost")) == 1, logs()
    moved_back = moves_back(samples)
    assert not moved_back, f"committed offsets moved back: {moved_back[:3]}\n{logs()}"
    assert samples[-1] == end_offsets(broker, topics["input"])  # no input since: nothing moves

    # Both replicas serve the next records.
    n2 = 1000
    stream = PacedProducer(broker, topics["input"], [tweet(i) for i in range(n1, n1 + n2)], rate=1000)
    stream.start()
    stream.finish(timeout=60)
    n = n1 + n2
    assert wait_for(lambda: rows() >= n, timeout=120), f"{rows()} of {n}\n{logs()}"
    assert wait_for(lambda: offsets_at_end(broker, topics), timeout=60), logs()
    for p in (zombie, other):
        p.send_signal(signal.SIGTERM)
    for p in (zombie, other):
        assert p.wait(60) == 0, log_of(p)

    assert count(database_url, "select count(*) from predictions") == n
    assert count(database_url, "select count(distinct message_id) from predictions") == n
    out = read_topic(broker, topics["output"], expect=n, timeout=120)
    keys = [r.key.decode() for r in out]
    assert set(keys) == {f"m{i}" for i in range(n)}
    if broker.filters_aborted:  # a real Kafka: the zombie's aborted attempts are invisible
        assert len(keys) == n

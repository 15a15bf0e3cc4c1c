"""A zombie replica: paused (SIGSTOP) past its session timeout with batches in flight, its partitions
go to the other replica, which writes everything; then it is resumed (SIGCONT).

What is asserted, precisely:
- the resumed replica commits nothing it read before the pause: the group's committed offsets never
  move back from where the other replica left them, sampled every 50 ms from before the resume until
  the group is stable again (a zombie's commit would move them back: its batches are older);
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

from tests.daemon.harness import committed_and_end, count, log_of, make_topics, read_topic, start, tweet, wait_for
from tests.reliability.streams import PacedProducer
from tests.reliability.replicas import events, holds_partitions, scale_out_env

# One rerun, the only one on tansu, until a flake is understood: in 1 of about 10 runs the hand-over
# precondition failed (with the zombie paused, the other replica wrote every row, yet the group's
# committed offsets did not reach the end offsets within 60 s). Suspected: tansu and the zombie's
# transaction left open by SIGSTOP, which it never times out. The property under test (no committed
# offset moves back) never failed. The failure message now prints the committed and end offsets.
pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.flaky(reruns=1, reruns_delay=2)]

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
        assert wait_for(lambda: (lambda c, e: c == e)(*committed_and_end(broker, topics["group"], topics["input"])),
                        timeout=60), f"committed, end: {committed_and_end(broker, topics['group'], topics['input'])}\n{logs()}"
        handed_over, _ = committed_and_end(broker, topics["group"], topics["input"])
        sampler = CommittedSampler(broker, topics["group"], topics["input"])
        sampler.start()
    finally:
        zombie.send_signal(signal.SIGCONT)

    # Resumed: it finds itself out of the group, drops what it held and rejoins.
    assert wait_for(lambda: zombie.poll() is not None or (events(zombie, "partitions_lost") and holds_partitions(zombie)
                                                          and holds_partitions(other)), timeout=90), logs()
    time.sleep(3)  # a late commit of the zombie would land here
    samples = sampler.stop()
    assert len(samples) >= 40, samples  # the whole resume was watched, not a moment of it
    assert zombie.poll() is None, f"exited {zombie.returncode}\n{logs()}"
    assert len(events(zombie, "partitions_lost")) == 1, logs()
    moved_back = [s for s in samples if any((s[p] or 0) < handed_over[p] for p in handed_over)]
    assert not moved_back, f"committed offsets moved back from {handed_over}: {moved_back[:3]}\n{logs()}"
    assert samples[-1] == handed_over  # no input since: nothing moves

    # Both replicas serve the next records.
    n2 = 1000
    stream = PacedProducer(broker, topics["input"], [tweet(i) for i in range(n1, n1 + n2)], rate=1000)
    stream.start()
    stream.finish(timeout=60)
    n = n1 + n2
    assert wait_for(lambda: rows() >= n, timeout=120), f"{rows()} of {n}\n{logs()}"
    assert wait_for(lambda: (lambda c, e: c == e)(*committed_and_end(broker, topics["group"], topics["input"])),
                    timeout=60), logs()
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

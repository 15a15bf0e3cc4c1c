"""Rebalance: before giving partitions up, the daemon writes everything it has read and commits it."""

from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from sqlalchemy import create_engine, text

from daemon.app import Daemon
from tests.daemon.harness import (
    DaemonThread,
    committed_and_end,
    count,
    make_settings,
    make_topics,
    produce,
    tweet,
    wait_for,
)

pytestmark = pytest.mark.kafka


def rows_per_partition(database_url: str) -> dict[int, int]:
    eng = create_engine(database_url)
    with eng.connect() as c:
        got = dict(c.execute(text("select partition, count(*) from predictions group by 1")).all())
    eng.dispose()
    return got


def test_revoke_writes_and_commits_everything_read(broker, topic_names, database_url, tiny_bert_dir):
    topics = make_topics(broker, topic_names, partitions=4)
    n = 4000
    revokes: list[dict] = []
    handovers: list[tuple[dict, dict]] = []

    class Observed(Daemon):
        def _on_revoked(self, revoked):
            offsets = super()._on_revoked(revoked)
            if revoked:
                committed, _ = committed_and_end(broker, topics["group"], topics["input"])
                revokes.append({
                    "to_commit": {tp.partition: o for tp, o in offsets.items()},
                    "committed": committed,
                    "rows": rows_per_partition(database_url),
                    "idle": self.batcher.wait_left() is None and self.worker.outbox.empty(),
                    "revoked": {tp.partition for tp in revoked},
                })
            return offsets

        def _on_assigned(self, assigned):
            # After the revoke callback's commit and the re-join; nothing is written in between.
            super()._on_assigned(assigned)
            if revokes:
                handovers.append((committed_and_end(broker, topics["group"], topics["input"])[0],
                                  rows_per_partition(database_url)))

    settings = make_settings(broker, database_url, topics, tiny_bert_dir,
                             kafka={"session_timeout_ms": 6000}, batch={"max_size": 64, "max_wait_ms": 100})

    def stream():
        for start in range(0, n, 200):
            produce(broker, topics["input"], (tweet(i) for i in range(start, start + 200)))
            time.sleep(0.05)

    with DaemonThread(settings, daemon_cls=Observed):
        producer = threading.Thread(target=stream)
        producer.start()
        assert wait_for(lambda: count(database_url, "select count(*) from predictions") >= 500, timeout=120)
        # A second member joins mid-stream: the daemon's partitions are revoked. It never commits,
        # so whatever it may read goes back to the daemon when it leaves.
        intruder = KafkaConsumer(**broker.client_kwargs, group_id=topics["group"], enable_auto_commit=False,
                                 session_timeout_ms=6000)
        intruder.subscribe([topics["input"]])
        end = time.monotonic() + 8
        while time.monotonic() < end and not revokes:
            try:
                intruder.poll(timeout_ms=100, max_records=1)
            except KafkaError:
                pass  # a join error only delays the intruder; the revoke is what is observed
        intruder.close(autocommit=False)
        producer.join()
        assert wait_for(lambda: count(database_url, "select count(*) from predictions") >= n, timeout=180)
        settled = wait_for(lambda: committed_and_end(broker, topics["group"], topics["input"])[0]
                           == committed_and_end(broker, topics["group"], topics["input"])[1], timeout=120)
        assert settled, (committed_and_end(broker, topics["group"], topics["input"]), rows_per_partition(database_url))

    assert revokes, "no partitions were revoked"
    for r in revokes:
        assert r["idle"], "records read before the revoke were still in flight"
        for p in r["revoked"]:
            # Every record read is written, and the offsets handed to the commit cover exactly them.
            handed_over = max(r["to_commit"].get(p, 0), r["committed"].get(p) or 0)
            assert handed_over == r["rows"].get(p, 0), (p, r)
    if broker.kind != "mock":
        # A real broker accepts the revoke callback's commit (the mock answers REBALANCE_IN_PROGRESS).
        for committed, rows in handovers:
            assert {p: committed.get(p) or 0 for p in range(4)} == {p: rows.get(p, 0) for p in range(4)}
    assert count(database_url, "select count(*) from predictions") == n
    assert count(database_url, "select count(distinct message_id) from predictions") == n

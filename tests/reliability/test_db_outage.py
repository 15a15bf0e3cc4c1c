"""Database outage: the test's own Postgres is stopped for 30 s mid-stream, then started again."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, text

from tests.daemon.harness import DaemonThread, committed_and_end, count, make_settings, make_topics, tweet, wait_for
from tests.reliability.streams import PacedProducer, http_status
from daemon.tansu_broker import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 2000
OUTAGE_S = 30.0


def test_postgres_down_30s_pauses_then_resumes_without_loss(broker, topic_names, tiny_bert_dir, own_postgres):
    pg = own_postgres
    topics = make_topics(broker, topic_names, partitions=3)
    port = free_port()
    settings = make_settings(broker, pg.url, topics, tiny_bert_dir,
                             observability={"http_port": port, "http_host": "127.0.0.1"},
                             database={"connect_timeout_s": 2},
                             retry={"initial_backoff_ms": 50, "max_backoff_ms": 2000})
    rows = lambda: count(pg.url, "select count(*) from predictions")  # noqa: E731
    # 50 msg/s for 40 s: the stream goes on before, during and after the outage.
    producer = PacedProducer(broker, topics["input"], [tweet(i) for i in range(N)], rate=50)

    with DaemonThread(settings) as d:
        metrics = d.daemon.metrics
        producer.start()
        assert wait_for(lambda: rows() >= 150, timeout=60)
        assert wait_for(lambda: http_status(port, "/readyz") == 200, timeout=10)

        pg.stop("fast")
        t_down = time.monotonic()
        ready, snapshots = [], []
        while time.monotonic() - t_down < OUTAGE_S:
            age = time.monotonic() - t_down
            ready.append((age, http_status(port, "/readyz")))
            snapshots.append((age, committed_and_end(broker, topics["group"], topics["input"])[0]))
            time.sleep(0.5)
        failures = metrics.sink_failures.labels("postgres")._value.get()
        paused = metrics.paused._value.get()
        live = http_status(port, "/healthz")
        restarted_at = datetime.now(timezone.utc)
        pg.start()

        assert wait_for(lambda: rows() >= N, timeout=120), f"only {rows()} of {N} rows after the outage"
        producer.finish(10)
        assert wait_for(lambda: sum(v or 0 for v in committed_and_end(
            broker, topics["group"], topics["input"])[0].values()) >= N, timeout=30)
        assert wait_for(lambda: http_status(port, "/readyz") == 200, timeout=10)
        assert d.stop() == 0

    # Not ready while the database is down (after the first failed write), alive all along.
    late = [code for age, code in ready if age > 3]
    assert late and all(code == 503 for code in late), ready
    assert live == 200 and paused == 1
    # Retried with exponential backoff (50 ms doubling to 2 s): a few dozen tries in 30 s, not a busy loop.
    assert 3 <= failures <= 60, failures

    # Nothing lost, nothing twice.
    assert count(pg.url, "select count(*) from predictions") == N
    assert count(pg.url, "select count(distinct message_id) from predictions") == N
    assert count(pg.url, f"select count(*) from predictions where message_id ~ '^m[0-9]+$' "
                         f"and substr(message_id, 2)::int < {N}") == N
    committed, end = committed_and_end(broker, topics["group"], topics["input"])
    assert committed == end

    # No offset committed past unwritten data: every offset below a committed offset seen during the
    # outage was already in the table before the restart (nothing can be written while it is down).
    eng = create_engine(pg.url)
    with eng.connect() as c:
        for age, offsets in snapshots:
            for partition, committed_offset in offsets.items():
                if not committed_offset:
                    continue
                written = c.execute(text(
                    'select count(*) from predictions where partition = :p and "offset" < :o and written_at < :t'
                ), {"p": partition, "o": committed_offset, "t": restarted_at}).scalar_one()
                assert written == committed_offset, (age, partition, committed_offset, written)
    eng.dispose()
    # And no offset moved while the database was down (a batch written just before may commit late).
    settled = [o for age, o in snapshots if age > 3]
    assert all(o == settled[0] for o in settled), settled

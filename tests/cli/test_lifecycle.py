"""`sentistream run` stopping and becoming ready, through the real CLI at its default settings (the
default model included): SIGTERM during a database outage, SIGTERM or SIGINT while the model loads,
/readyz before the database has ever answered."""

from __future__ import annotations

import json
import signal
import time

import pytest
from sqlalchemy import create_engine, text

from tests.daemon.harness import (
    committed_and_end, count, default_env, finish_stream, log_of, make_topics, produce, start, tweet, wait_for,
)
from tests.reliability.streams import http_status
from daemon.tansu_broker import free_port

pytestmark = pytest.mark.kafka
SHUTDOWN_TIMEOUT_S = 30  # the default


def events(proc) -> list[dict]:
    """The daemon's stderr: JSON log lines (the default format off a terminal), nothing else."""
    return [json.loads(line) for line in log_of(proc, tail=None).splitlines()]


def logged(proc, event: str) -> bool:
    return f'"event": "{event}"' in log_of(proc, tail=None)


def rows_per_partition(url: str) -> dict[int, int]:
    engine = create_engine(url)
    with engine.connect() as c:
        out = dict(c.execute(text("select partition, count(*) from predictions group by partition")).all())
    engine.dispose()
    return out


@pytest.mark.slow
def test_sigterm_during_database_outage_exits_1_within_the_timeout_committing_only_what_was_written(
        broker, topic_names, own_postgres):
    pg = own_postgres
    topics = make_topics(broker, topic_names, partitions=3)
    env = default_env(broker, pg.url, topics,
                      SENTISTREAM_OBSERVABILITY__HTTP_PORT=str(free_port()))  # tests run side by side
    produce(broker, topics["input"], (tweet(i) for i in range(60)))
    proc = start(env)
    try:
        assert wait_for(lambda: sum(v or 0 for v in committed_and_end(
            broker, topics["group"], topics["input"])[0].values()) >= 60 or proc.poll() is not None,
            timeout=120), log_of(proc)
        pg.stop("fast")
        produce(broker, topics["input"], (tweet(i) for i in range(60, 120)))
        assert wait_for(lambda: logged(proc, "sink_unavailable_pausing") or proc.poll() is not None,
                        timeout=60), log_of(proc)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(SHUTDOWN_TIMEOUT_S + 30)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 1, log_of(proc)
    assert elapsed <= SHUTDOWN_TIMEOUT_S + 5, elapsed
    assert "Traceback" not in log_of(proc, tail=None)
    stops = [e for e in events(proc) if e["level"] == "error"]
    assert [e["event"] for e in stops] == ["shutdown_incomplete"], stops
    assert "postgres unavailable" in stops[0]["error"] and "offsets stay uncommitted" in stops[0]["error"]

    # Committed offsets cover exactly the rows written, partition by partition; the rest is re-read.
    pg.start()
    committed, _ = committed_and_end(broker, topics["group"], topics["input"])
    written = rows_per_partition(pg.url)
    assert sum(written.values()) == 60
    assert {p: o for p, o in committed.items() if o} == written
    rows = lambda: count(pg.url, "select count(*) from predictions")  # noqa: E731
    finish_stream(env, rows, 120, broker, topics, timeout=120)
    assert count(pg.url, "select count(distinct message_id) from predictions") == 120 == rows()


def test_readyz_is_503_until_the_database_has_answered(broker, topic_names, own_postgres):
    pg = own_postgres
    topics = make_topics(broker, topic_names, partitions=1)
    port = free_port()
    env = default_env(broker, pg.url, topics, SENTISTREAM_OBSERVABILITY__HTTP_PORT=str(port))  # side by side
    proc = start(env)
    try:
        # The start-up check reached the database; it goes away while the model loads (seconds).
        assert wait_for(lambda: logged(proc, "dependencies_reachable") or proc.poll() is not None,
                        timeout=60, interval=0.05), log_of(proc)
        pg.stop("fast")
        assert wait_for(lambda: logged(proc, "daemon_started") or proc.poll() is not None, timeout=120), log_of(proc)
        assert wait_for(lambda: http_status(port, "/healthz") == 200, timeout=10), log_of(proc)
        seen = []
        for _ in range(10):  # three seconds with the partitions assigned but no database
            seen.append(http_status(port, "/readyz"))
            time.sleep(0.3)
        assert seen == [503] * 10, seen
        pg.start()
        assert wait_for(lambda: http_status(port, "/readyz") == 200, timeout=30), log_of(proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(SHUTDOWN_TIMEOUT_S + 10) == 0, log_of(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in log_of(proc, tail=None)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_signal_while_the_model_loads_stops_at_once(sig, broker, topic_names, database_url):
    topics = make_topics(broker, topic_names, partitions=1)
    proc = start(default_env(broker, database_url, topics, SENTISTREAM_OBSERVABILITY__HTTP_PORT="0"))  # side by side
    try:
        assert wait_for(lambda: logged(proc, "dependencies_reachable") or proc.poll() is not None,
                        timeout=60, interval=0.02), log_of(proc)
        t0 = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(30)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, log_of(proc)
    assert "Traceback" not in log_of(proc, tail=None)
    last = events(proc)[-1]
    assert last["event"] == "daemon_stopped" and last["before_start"] is True and last["signal"] == sig.name
    assert not logged(proc, "daemon_started")
    assert elapsed < 5, elapsed  # loading the default model alone takes longer

"""The daemon as operators run it: a `sentistream run` subprocess, killed and stopped."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.daemon.harness import committed_and_end, count, make_topics, produce, tweet, wait_for

pytestmark = pytest.mark.kafka


def daemon_env(broker, database_url, topics, model_dir, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTISTREAM_")}
    env |= {
        "SENTISTREAM_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "SENTISTREAM_KAFKA__DELIVERY": broker.delivery,
        "SENTISTREAM_KAFKA__INPUT_TOPICS": f'["{topics["input"]}"]',
        "SENTISTREAM_KAFKA__OUTPUT_TOPIC": topics["output"],
        "SENTISTREAM_KAFKA__DEAD_LETTER_TOPIC": topics["dlq"],
        "SENTISTREAM_KAFKA__GROUP_ID": topics["group"],
        "SENTISTREAM_KAFKA__TRANSACTIONAL_ID": topics["group"] + "-tx",
        # A killed member's session must expire before its successor is assigned the partitions.
        "SENTISTREAM_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "SENTISTREAM_DATABASE__URL": database_url,
        "SENTISTREAM_MODEL__PATH": str(model_dir),
        "SENTISTREAM_BATCH__MAX_SIZE": "32",
        "SENTISTREAM_BATCH__MAX_WAIT_MS": "20",
        "SENTISTREAM_OBSERVABILITY__HTTP_PORT": "0",
        "SENTISTREAM_OBSERVABILITY__LOG_LEVEL": "WARNING",
        "SENTISTREAM_SHUTDOWN_TIMEOUT_S": "30",
    }
    if broker.api_version:
        env["SENTISTREAM_KAFKA__API_VERSION"] = broker.api_version
    return env | extra


def start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "schemas.cli", "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


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
        assert wait_for(lambda: rows() >= target or proc.poll() is not None, timeout=120, interval=0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
        progress.append(rows())
    assert progress[-1] < n, "stream finished before the third kill; the test must kill mid-stream"
    proc = start(env)
    try:
        assert wait_for(lambda: rows() >= n, timeout=180), f"only {rows()} of {n} rows"
        assert wait_for(lambda: sum(v or 0 for v in committed_and_end(
            broker, topics["group"], topics["input"])[0].values()) >= n, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.stderr.read().decode()[-2000:]
    assert count(database_url, "select count(*) from predictions") == n
    assert count(database_url, "select count(distinct message_id) from predictions") == n
    ids = count(database_url, "select count(*) from predictions where message_id ~ '^m[0-9]+$' "
                              f"and substr(message_id, 2)::int < {n}")
    assert ids == n


def test_sigterm_finishes_in_flight_work_and_exits_zero(broker, topic_names, database_url, tiny_bert_dir):
    topics = make_topics(broker, topic_names)
    n = 3000
    produce(broker, topics["input"], (tweet(i) for i in range(n)))
    # Large batches and a slow queue keep work in flight at the moment the signal lands.
    env = daemon_env(broker, database_url, topics, tiny_bert_dir,
                     SENTISTREAM_BATCH__MAX_SIZE="256", SENTISTREAM_BATCH__MAX_WAIT_MS="200")
    proc = start(env)
    assert wait_for(lambda: count(database_url, "select count(*) from predictions") >= 300
                    or proc.poll() is not None, timeout=120)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, proc.stderr.read().decode()[-2000:]
    written = count(database_url, "select count(*) from predictions")
    committed, end = committed_and_end(broker, topics["group"], topics["input"])
    # Everything read was written, and the committed offsets cover exactly what was written.
    assert sum(v or 0 for v in committed.values()) == written
    assert 0 < written <= n
    # A restart picks up exactly where the clean stop left off.
    proc = start(env)
    assert wait_for(lambda: count(database_url, "select count(*) from predictions") >= n, timeout=120)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    assert count(database_url, "select count(distinct message_id) from predictions") == n
    committed, end = committed_and_end(broker, topics["group"], topics["input"])
    assert committed == end

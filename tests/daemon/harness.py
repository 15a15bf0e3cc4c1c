"""Helpers to drive a real daemon against the test broker and database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import create_engine, text

from daemon.app import Daemon
from tests.brokers import METADATA_MAX_AGE_MS
from schemas.settings import Settings


def make_settings(broker, database_url: str, topics: dict[str, str], model_dir: Path | None,
                  **sections) -> Settings:
    kafka = {
        "bootstrap_servers": broker.bootstrap_servers,
        "api_version": broker.api_version,
        "delivery": broker.delivery,
        "input_topics": (topics["input"],),
        "output_topic": topics["output"],
        "dead_letter_topic": topics["dlq"],
        "group_id": topics["group"],
        "transactional_id": topics["group"] + "-tx",
        # Tansu holds every JoinGroup for session_timeout_ms / 2, so each (re)join costs 3 s here, not
        # 15 s at the default; 6 s is the least a real Kafka accepts (group.min.session.timeout.ms).
        "session_timeout_ms": 6000,
        "metadata_max_age_ms": METADATA_MAX_AGE_MS,
    } | sections.pop("kafka", {})
    cfg = {
        "kafka": kafka,
        "database": {"url": database_url} | sections.pop("database", {}),
        "model": {"path": model_dir} | sections.pop("model", {}),
        "batch": {"max_size": 32, "max_wait_ms": 20} | sections.pop("batch", {}),
        "observability": {"http_port": 0, "log_level": "WARNING"} | sections.pop("observability", {}),
        "retry": {"initial_backoff_ms": 50, "max_backoff_ms": 1000} | sections.pop("retry", {}),
    } | sections
    return Settings(**cfg)


def make_topics(broker, names: Callable[[str], str], partitions: int = 3) -> dict[str, str]:
    t = {k: names(k) for k in ("input", "output", "dlq")}
    broker.create_topic(t["input"], partitions)
    broker.create_topic(t["output"], partitions)
    broker.create_topic(t["dlq"], 1)
    t["group"] = names("group")
    return t


def produce(broker, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    p = KafkaProducer(**broker.client_kwargs, acks="all", linger_ms=5)
    n = 0
    for key, value in records:
        p.send(topic, key=key, value=value)
        n += 1
    p.flush()
    p.close()
    return n


def tweet(i: int, text: str | None = None, **extra) -> tuple[bytes, bytes]:
    doc = {"id": f"m{i}", "text": text or f"message number {i} was great", "source": "twitter", **extra}
    return doc["id"].encode(), json.dumps(doc).encode()


def read_topic(broker, topic: str, expect: int, timeout: float = 30.0) -> list:
    c = KafkaConsumer(topic, **broker.client_kwargs, group_id=None, auto_offset_reset="earliest",
                      enable_auto_commit=False, isolation_level="read_committed",
                      consumer_timeout_ms=int(timeout * 1000))
    out, end = [], time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < end:
        for records in c.poll(timeout_ms=500).values():
            out.extend(records)
    # Anything beyond ``expect`` must show up too: read a little longer.
    extra_end = time.monotonic() + 1.0
    while time.monotonic() < extra_end:
        for records in c.poll(timeout_ms=200).values():
            out.extend(records)
    c.close()
    return out


def end_offsets(broker, topic: str, timeout: float = 30.0) -> dict[int, int]:
    """Each partition's end offset, read from a fetch's high watermark. Not ``KafkaConsumer.end_offsets``
    (ListOffsets LATEST): tansu answers that with the base offset of the last record batch + 1, short
    of the end whenever the last batch holds more than one record."""
    c = KafkaConsumer(**broker.client_kwargs, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", fetch_max_wait_ms=100)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
        assert parts, f"no metadata for topic {topic}"
        c.assign(parts)
        for tp in parts:
            c.seek(tp, 0)  # any fetch answers with the high watermark; no ListOffsets needed
        deadline = time.monotonic() + timeout
        while any(c.highwater(tp) is None for tp in parts):
            assert time.monotonic() < deadline, f"no high watermark for {topic} within {timeout:g} s"
            c.poll(timeout_ms=100)
        return {tp.partition: c.highwater(tp) for tp in parts}
    finally:
        c.close()


def committed_and_end(broker, group: str, topic: str) -> tuple[dict, dict]:
    """The group's committed offset and the end offset of each partition of ``topic``."""
    c = KafkaConsumer(**broker.client_kwargs, group_id=group, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
    committed = {tp.partition: c.committed(tp) for tp in parts}
    c.close()
    return committed, end_offsets(broker, topic)


def count(database_url: str, sql: str) -> int:
    eng = create_engine(database_url)
    with eng.connect() as conn:
        n = conn.execute(text(sql)).scalar_one()
    eng.dispose()
    return n


def wait_for(cond: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def default_env(broker, database_url: str, topics: dict[str, str], **extra: str) -> dict[str, str]:
    """``sentistream run`` at its default settings (the default model included), but for where its
    services are and what this test's broker needs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTISTREAM_")}
    env |= {
        "SENTISTREAM_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "SENTISTREAM_DATABASE__URL": database_url,
        # Topics and group of this test's own: a real Kafka (KAFKA_BOOTSTRAP_SERVERS) is shared by tests.
        "SENTISTREAM_KAFKA__INPUT_TOPICS": topics["input"],
        "SENTISTREAM_KAFKA__OUTPUT_TOPIC": topics["output"],
        "SENTISTREAM_KAFKA__DEAD_LETTER_TOPIC": topics["dlq"],
        "SENTISTREAM_KAFKA__GROUP_ID": topics["group"],
        # Tansu holds every JoinGroup for session_timeout_ms / 2: 15 s per (re)join at the default
        # 30 s, 3 s at 6 s, the least a real Kafka accepts (group.min.session.timeout.ms).
        "SENTISTREAM_KAFKA__SESSION_TIMEOUT_MS": "6000",
    }
    if broker.delivery != "transactional":  # the mock cluster: no transaction semantics
        env["SENTISTREAM_KAFKA__DELIVERY"] = broker.delivery
    if broker.api_version:  # the mock cluster cannot be version-probed
        env["SENTISTREAM_KAFKA__API_VERSION"] = broker.api_version
    return env | extra


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
        # A killed member's session must expire before its successor is assigned the partitions, and
        # tansu holds every JoinGroup for half of it: short, but the least a real Kafka accepts.
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


_started: list[subprocess.Popen] = []


def start(env: dict[str, str]) -> subprocess.Popen:
    """``sentistream run`` as a child process; its stderr goes to a file (read with ``log_of``): an
    unread pipe fills at 64 KiB and then blocks the daemon at its next log line."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "schemas.cli", "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    proc.log = log
    _started.append(proc)
    return proc


def log_of(proc: subprocess.Popen, tail: int | None = 3000) -> str:
    """What a process from ``start`` wrote to stderr: the last ``tail`` characters, or all of it."""
    proc.log.seek(0)
    text = proc.log.read().decode(errors="replace")
    return text if tail is None else text[-tail:]


def kill_leftovers() -> None:
    """SIGKILL every daemon process a test started and left running (a failed assertion skips its
    stop), so a failed attempt cannot keep consuming CPU through the reruns and later tests."""
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def finish_stream(env: dict[str, str], done: Callable[[], int], n: int, broker, topics: dict[str, str],
                  timeout: float) -> None:
    """Restart the daemon, wait until ``done()`` reaches ``n`` and the group's committed offsets
    cover ``n`` records, then stop it with SIGTERM, which must exit 0."""
    proc = start(env)
    try:
        assert wait_for(lambda: done() >= n, timeout=timeout), f"only {done()} of {n}; daemon log:\n{log_of(proc)}"
        assert wait_for(lambda: sum(v or 0 for v in committed_and_end(
            broker, topics["group"], topics["input"])[0].values()) >= n, timeout=60), log_of(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log_of(proc)


class DaemonThread:
    """A Daemon running in a thread of the test process."""

    def __init__(self, settings: Settings, classifier=None, daemon_cls: type[Daemon] = Daemon) -> None:
        self.daemon = daemon_cls(settings, classifier)
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.exit_code = self.daemon.run()
        except BaseException as e:  # surfaced by stop()
            self.error = e

    def __enter__(self) -> DaemonThread:
        self.thread.start()
        end = time.monotonic() + 120
        while not self.daemon.wait_started(0.2) and time.monotonic() < end:
            if not self.thread.is_alive():
                raise AssertionError(f"daemon failed to start: {self.error!r}") from self.error
        assert self.daemon.wait_started(0), "daemon did not start within 120 s"
        return self

    def stop(self, timeout: float = 60) -> int:
        self.daemon.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "daemon did not stop"
        if self.error:
            raise self.error
        return self.exit_code

    def __exit__(self, *exc) -> None:
        if self.thread.is_alive():
            self.stop()

"""Helpers to drive a real daemon against the test broker and database."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import create_engine, text

from daemon.app import Daemon
from tests.conftest import METADATA_MAX_AGE_MS
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
        "session_timeout_ms": 10_000,
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


def committed_and_end(broker, group: str, topic: str) -> tuple[dict, dict]:
    c = KafkaConsumer(**broker.client_kwargs, group_id=group, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
    committed = {tp.partition: c.committed(tp) for tp in parts}
    end = {tp.partition: o for tp, o in c.end_offsets(parts).items()}
    c.close()
    return committed, end


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

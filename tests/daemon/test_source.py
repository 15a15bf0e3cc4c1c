"""The source's start-up: on a real Kafka-protocol broker it knows its input topics' partitions before
its first poll joins the group, so the first assignment already holds them; with no broker the wait
for that metadata is bounded. And the kafka-python internals it relies on: a client without them
fails at start with one clear error."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from kafka.coordinator.consumer import ConsumerCoordinator

from daemon import kafka_internals
from daemon import source as source_module
from daemon.errors import UnsupportedKafkaClient
from daemon.kafka_internals import ConsumerInternals, GroupState
from daemon.source import KafkaSource
from schemas.errors import SentistreamError
from schemas.settings import KafkaSettings

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def kafka_settings(broker, topic: str, group: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=broker.bootstrap_servers, api_version=broker.api_version,
                         input_topics=(topic,), group_id=group, session_timeout_ms=10_000,
                         # The default 30 s refresh: a join that missed the metadata would not be rescued
                         # by a refresh within this test.
                         metadata_max_age_ms=30_000)


@pytest.mark.kafka
def test_first_assignment_holds_every_partition(broker, topic_names):
    topic = broker.create_topic(topic_names("input"), 3)
    assigned: list[set] = []
    src = KafkaSource(kafka_settings(broker, topic, topic_names("group")),
                      on_revoked=lambda revoked: {}, on_assigned=assigned.append, on_lost=lambda lost: None)
    try:
        # The wait ran in the constructor: the partitions are known before any poll.
        assert ConsumerInternals(src.consumer).known_partitions(topic) == {0, 1, 2}
        deadline = time.monotonic() + 30
        while not src.assignment() and time.monotonic() < deadline:
            src.poll(100)
        assert {tp.partition for tp in src.assignment()} == {0, 1, 2}
        # One rebalance, not an empty assignment first and a second rebalance to repair it.
        assert [{tp.partition for tp in a} for a in assigned] == [{0, 1, 2}]
    finally:
        src.close()


def test_no_broker_costs_a_bounded_wait_not_a_hang(monkeypatch):
    # Nothing listens on port 1: no metadata can come (the broker fixture auto-creates any topic asked
    # for, so a missing topic cannot be staged there).
    monkeypatch.setattr(source_module, "METADATA_WAIT_S", 1.5)
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:1", api_version="2.3", input_topics=("t",))
    t0 = time.monotonic()
    src = KafkaSource(settings, on_revoked=lambda revoked: {}, on_assigned=lambda a: None, on_lost=lambda lost: None)
    waited = time.monotonic() - t0
    src.close()
    assert 1.4 <= waited < 10


def pinned_kafka_python() -> str:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return next(d for d in deps if d.startswith("kafka-python=="))


def assert_one_clear_line(e: pytest.ExceptionInfo, missing: str) -> None:
    assert isinstance(e.value, SentistreamError)
    msg = str(e.value)
    assert "\n" not in msg and f"{missing} missing" in msg and f"install {pinned_kafka_python()}" in msg


def test_the_pinned_kafka_python_has_every_internal_used():
    kafka_internals.check_classes()
    c = KafkaConsumer(bootstrap_servers="127.0.0.1:1", group_id="g", api_version=(2, 5), enable_auto_commit=False)
    try:
        assert ConsumerInternals(c).known_partitions("t") is None  # no broker: no metadata
        assert GroupState(c).generation_lost()  # never joined
    finally:
        c.close(timeout_ms=100)


def test_internals_check_fails_cleanly_on_a_kafka_python_without_a_private_method(monkeypatch):
    monkeypatch.delattr(ConsumerCoordinator, "_commit_offsets_sync_async")
    with pytest.raises(UnsupportedKafkaClient) as e:
        kafka_internals.check_classes()
    assert_one_clear_line(e, "ConsumerCoordinator._commit_offsets_sync_async")


def test_internals_check_fails_cleanly_on_a_kafka_python_without_a_private_module(monkeypatch):
    monkeypatch.setitem(kafka_internals._CLASSES, ("kafka.moved_away", "Thing"), ("method",))
    with pytest.raises(UnsupportedKafkaClient) as e:
        kafka_internals.check_classes()
    assert_one_clear_line(e, "kafka.moved_away.Thing")


def test_internals_check_fails_cleanly_on_a_consumer_without_a_private_attribute(monkeypatch):
    c = KafkaConsumer(bootstrap_servers="127.0.0.1:1", group_id="g", api_version=(2, 5), enable_auto_commit=False)
    try:
        monkeypatch.delattr(c, "_cluster")
        with pytest.raises(UnsupportedKafkaClient) as e:  # not an AttributeError, now or mid-stream
            ConsumerInternals(c)
        assert_one_clear_line(e, "KafkaConsumer._cluster")
    finally:
        monkeypatch.undo()
        c.close(timeout_ms=100)

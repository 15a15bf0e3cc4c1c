"""The source's start-up: on a real Kafka-protocol broker it knows its input topics' partitions before
its first poll joins the group, so the first assignment already holds them; with no broker the wait
for that metadata is bounded."""

from __future__ import annotations

import time

import pytest

from daemon import source as source_module
from daemon.source import KafkaSource
from schemas.settings import KafkaSettings


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
        assert src.consumer._cluster.partitions_for_topic(topic) == {0, 1, 2}
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

"""The labels topic on a real Kafka-protocol broker: good records land in the labels table, bad ones
are rejected with reasons and kept in the dead_letters table, and offsets are committed after the write."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaProducer
from sqlalchemy import select

from schemas.db import DeadLetterRow, LabelRow, make_engine
from schemas.messages import LABEL_REJECTED
from schemas.settings import KafkaSettings
from training.consumer import LabelsConsumer

pytestmark = pytest.mark.kafka


def test_labels_topic_to_table(broker, topic_names, database_url):
    topic = broker.create_topic(topic_names("labels"))
    producer = KafkaProducer(**broker.client_kwargs)
    records = [
        {"message_id": "t1", "text": "love it", "label": "positive", "labeled_by": "ana"},
        {"message_id": "t2", "text": "hate it", "label": 0},
        {"message_id": "t3", "text": "hmm", "label": "bored"},
        {"text": "no id", "label": "positive"},
        {"message_id": "never-seen", "label": "positive"},
    ]
    for r in records:
        producer.send(topic, json.dumps(r).encode())
    producer.send(topic, b"\xff not json")
    producer.flush()
    producer.close()

    engine = make_engine(database_url)
    # A join that misses the new topic's metadata gets it on the next (1 s) refresh and a rebalance.
    # Tansu holds each JoinGroup for session_timeout_ms / 2, longer than drain's first idle poll at
    # the default: 6 s is the least session a real Kafka accepts.
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers,
                          api_version=broker.api_version, metadata_max_age_ms=1000, session_timeout_ms=6000)
    consumer = LabelsConsumer(kafka, topic, engine, ("negative", "positive"), group_id=topic_names("g"))
    res = consumer.drain(idle_ms=6000)
    consumer.close()

    assert res.written == 2
    assert sorted(r.reason.split(":")[0] for r in res.rejected) == [
        "invalid JSON", "missing message_id", "unknown label 'bored'; expected one of ['negative', 'positive'] or 0..1",
        "unknown message id 'never-seen' and no text"]
    assert sorted(r.line for r in res.rejected) == [2, 3, 4, 5]  # the records' offsets
    with engine.connect() as c:
        rows = {r.message_id: (r.label, r.labeled_by, r.origin) for r in c.execute(select(LabelRow.__table__))}
        dead = {r.offset: r for r in c.execute(select(DeadLetterRow.__table__))}
    assert rows == {"t1": ("positive", "ana", "kafka"), "t2": ("negative", "labels-topic", "kafka")}
    # Nothing is lost: each rejected record is kept whole, at its position, with its reason.
    assert sorted(dead) == [2, 3, 4, 5]
    assert {(d.topic, d.partition, d.error_kind) for d in dead.values()} == {(topic, 0, LABEL_REJECTED)}
    assert dead[5].original == b"\xff not json" and dead[5].error_text.startswith("invalid JSON")
    assert json.loads(dead[4].original) == records[4] and "never-seen" in dead[4].error_text

    # A new member of the same group starts after the committed offsets: nothing is read twice.
    again = LabelsConsumer(kafka, topic, engine, ("negative", "positive"), group_id=consumer.consumer.config["group_id"])
    assert again.drain(idle_ms=1500).written == 0
    again.close()
    engine.dispose()

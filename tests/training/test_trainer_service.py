"""`sentistream trainer` loop on real services: labels arrive on the topic, the loop refits once
enough are in, promotes the first adapter, and stops cleanly when asked."""

from __future__ import annotations

import json
import threading
import time

import pytest
from kafka import KafkaProducer

from schemas.db import make_engine
from schemas.settings import Settings
from training import registry
from training.service import serve
from tests.training.factories import synthetic

pytestmark = pytest.mark.kafka


def test_trainer_loop_consumes_refits_and_stops(broker, topic_names, database_url, tiny_bert_dir, tmp_path):
    topic = broker.create_topic(topic_names("labels"))
    producer = KafkaProducer(**broker.client_kwargs)
    for e in synthetic(300, seed=3):
        producer.send(topic, json.dumps({"message_id": e.message_id, "text": e.text, "label": e.label}).encode())
    producer.flush()
    producer.close()
    settings = Settings(
        database={"url": database_url},
        kafka={"bootstrap_servers": broker.bootstrap_servers, "api_version": broker.api_version,
               "group_id": topic_names("g")},
        training={"base_model": tiny_bert_dir, "adapters_dir": tmp_path / "a", "reports_dir": tmp_path / "r",
                  "labels_topic": topic, "interval_s": 2, "min_new_labels": 250, "max_length": 16,
                  "lora_dropout": 0.0, "learning_rate": 1e-2, "batch_size": 16, "epochs": 2,
                  "target_modules": ["query", "value", "word_embeddings"], "gold_fraction": 0.2},
    )
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(settings, settings.training), kwargs={"stop": stop})
    t.start()
    engine = make_engine(database_url)
    try:
        deadline = time.monotonic() + 240
        while registry.active(engine, "default") is None and time.monotonic() < deadline and t.is_alive():
            time.sleep(1)
        row = registry.active(engine, "default")
        assert row is not None, "the trainer loop did not promote an adapter"
        assert row["label_watermark"] == 300
    finally:
        stop.set()
        t.join(timeout=60)
        engine.dispose()
    assert not t.is_alive()
    assert len(registry.list_adapters(make_engine(database_url))) == 1  # no refit without new labels

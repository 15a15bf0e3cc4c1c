"""Model faults: out-of-memory on large batches splits them; a message that always fails is dead-lettered."""

from __future__ import annotations

import threading

import pytest
import torch
from sqlalchemy import create_engine, text

from models.base import Classifier
from models.loading import load_classifier
from schemas.messages import CLASSIFY_FAILED
from schemas.settings import ModelSettings
from tests.daemon.harness import (
    DaemonThread,
    committed_and_end,
    count,
    make_settings,
    make_topics,
    produce,
    read_topic,
    tweet,
    wait_for,
)
from tests.reliability.streams import http_status
from daemon.tansu_broker import free_port

pytestmark = pytest.mark.kafka

POISON = "this one always breaks the model"


class FaultyClassifier:
    """A real classifier that runs out of memory above ``max_batch`` texts and fails on POISON."""

    def __init__(self, inner: Classifier, max_batch: int) -> None:
        self.inner, self.max_batch = inner, max_batch
        self.labels, self.model_version = inner.labels, inner.model_version
        self.calls: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def classify(self, texts):
        with self._lock:
            if len(texts) > self.max_batch:
                self.calls.append((len(texts), "oom"))
                raise torch.OutOfMemoryError(f"CUDA out of memory (simulated for {len(texts)} texts)")
            if any(POISON in t for t in texts):
                self.calls.append((len(texts), "poison"))
                raise RuntimeError("device-side assert triggered (simulated)")
            self.calls.append((len(texts), "ok"))
        return self.inner.classify(texts)


def test_oom_splits_batches_and_poison_is_dead_lettered(broker, topic_names, database_url, tiny_bert_dir):
    topics = make_topics(broker, topic_names, partitions=1)
    clf = FaultyClassifier(load_classifier(ModelSettings(path=tiny_bert_dir)), max_batch=5)
    port = free_port()
    settings = make_settings(broker, database_url, topics, tiny_bert_dir,
                             batch={"max_size": 32, "max_wait_ms": 200},
                             retry={"initial_backoff_ms": 10, "classify_attempts": 3},
                             observability={"http_port": port, "http_host": "127.0.0.1"})
    first = [tweet(i) for i in range(200)]
    first[77] = tweet(77, text=f"{POISON} #77")
    rows = lambda: count(database_url, "select count(*) from predictions")  # noqa: E731
    dead = lambda: count(database_url, "select count(*) from dead_letters")  # noqa: E731

    with DaemonThread(settings, classifier=clf) as d:
        produce(broker, topics["input"], first)
        assert wait_for(lambda: rows() + dead() >= 200, timeout=60)
        # Still serving: a second wave, with another poison message, goes through the same way.
        second = [tweet(i) for i in range(200, 400)]
        second[50] = tweet(250, text=f"{POISON} #250")
        produce(broker, topics["input"], second)
        assert wait_for(lambda: rows() + dead() >= 400, timeout=60)
        assert http_status(port, "/readyz") == 200
        assert wait_for(lambda: sum(v or 0 for v in committed_and_end(
            broker, topics["group"], topics["input"])[0].values()) >= 400, timeout=30)
        retries = d.daemon.metrics.classify_retries._value.get()
        assert d.stop() == 0

    assert rows() == 398 and dead() == 2
    assert count(database_url, "select count(distinct message_id) from predictions") == 398
    eng = create_engine(database_url)
    with eng.connect() as c:
        letters = c.execute(text("select message_id, error_kind, error_text, original from dead_letters "
                                 "order by message_id")).all()
    eng.dispose()
    assert [(m, k) for m, k, _, _ in letters] == [("m250", CLASSIFY_FAILED), ("m77", CLASSIFY_FAILED)]
    assert all(t.startswith("RuntimeError: device-side assert") for _, _, t, _ in letters)
    assert POISON.encode() in letters[0][3]  # original bytes kept

    # Batches above the limit were split (never retried whole), and nothing above it succeeded.
    assert any(kind == "oom" for _, kind in clf.calls)
    assert all(n <= 5 for n, kind in clf.calls if kind == "ok")
    # The poison message alone was tried classify_attempts times after its batch was split down to it.
    assert sum(1 for n, kind in clf.calls if (n, kind) == (1, "poison")) == 2 * 3
    assert retries > 0

    dlq = read_topic(broker, topics["dlq"], 2)
    assert sorted(dict(r.headers)["error-kind"] for r in dlq) == [CLASSIFY_FAILED.encode()] * 2
    assert len({r.key for r in read_topic(broker, topics["output"], 398)}) == 398

"""The batcher's closing rule: full batches always; past max_wait only for an idle worker."""

from __future__ import annotations

import threading

import pytest

from daemon.batcher import MicroBatcher
from models.loading import load_classifier
from schemas.messages import DeadLetter
from schemas.settings import BatchSettings
from tests.daemon.harness import DaemonThread, count, make_settings, make_topics, produce, tweet, wait_for
from tests.daemon.factories import item


def batcher(max_size: int = 4, max_wait_ms: int = 50) -> MicroBatcher:
    return MicroBatcher(BatchSettings(max_size=max_size, max_wait_ms=max_wait_ms))


def test_past_max_wait_closes_only_when_the_worker_is_idle():
    b = batcher()
    b.add(item(0, 0), now=10.0)
    assert not b.due(worker_idle=True, now=10.049)
    assert b.wait_left(now=10.030) == pytest.approx(0.020)
    # Overdue while the worker is busy: the batch stays open and keeps filling.
    assert not b.due(worker_idle=False, now=10.500)
    b.add(item(0, 1), now=10.500)
    b.add(item(0, 2), now=10.600)
    assert b.wait_left(now=10.600) == 0.0
    assert b.due(worker_idle=True, now=10.600)
    taken = b.take()
    assert [i.offset for i in taken.items] == [0, 1, 2] and taken.first_ms == 10.0
    assert b.take() is None and not b.due(worker_idle=True, now=99.0) and b.wait_left() is None


def test_full_batch_closes_even_while_the_worker_is_busy():
    b = batcher(max_size=3)
    for o in range(2):
        b.add(item(0, o), now=1.0)
    assert not b.full() and not b.due(worker_idle=False, now=1.0)
    b.add(item(0, 2), now=1.0)
    assert b.full() and b.due(worker_idle=False, now=1.0)


def test_dead_letters_ride_along_without_filling_the_batch():
    b = batcher(max_size=1)
    b.add(DeadLetter(original=b"x", topic="in", partition=0, offset=0, error_kind="k", error_text="e"), now=0.0)
    assert not b.full() and not b.due(worker_idle=False, now=5.0)
    assert b.due(worker_idle=True, now=5.0)
    b.add(item(0, 1), now=5.0)
    taken = b.take()
    assert len(taken.dead) == 1 and len(taken.items) == 1 and taken.offsets == {("in", 0): 2}


class GatedClassifier:
    """A real (tiny) classifier whose first call blocks until the test opens the gate."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.labels, self.model_version = inner.labels, inner.model_version
        self.entered, self.gate = threading.Event(), threading.Event()
        self.sizes: list[int] = []

    def classify(self, texts):
        self.sizes.append(len(texts))
        self.entered.set()
        assert self.gate.wait(120), "gate never opened"
        return self.inner.classify(texts)


@pytest.mark.kafka
def test_batch_grows_while_the_worker_is_busy(broker, topic_names, database_url, tiny_bert_dir):
    topics = make_topics(broker, topic_names, partitions=1)
    settings = make_settings(broker, database_url, topics, tiny_bert_dir,
                             batch={"max_size": 64, "max_wait_ms": 10, "queue_size": 4})
    clf = GatedClassifier(load_classifier(settings.model))
    with DaemonThread(settings, clf) as d:
        produce(broker, topics["input"], [tweet(0)])
        assert clf.entered.wait(60)
        # The worker is stuck on message 0; 40 more arrive, each far past max_wait.
        produce(broker, topics["input"], (tweet(i) for i in range(1, 41)))
        assert wait_for(lambda: len(d.daemon.batcher._batch) == 40, timeout=60)
        assert d.daemon.worker.pending == 1  # held open, not queued as small batches
        clf.gate.set()
        assert wait_for(lambda: count(database_url, "select count(*) from predictions") == 41, timeout=60)
    assert clf.sizes == [1, 40]

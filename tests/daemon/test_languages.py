"""Messages in a language the model does not serve: classified, flagged in the row and the output
record, counted; through the worker, the sinks and a real daemon on the default preset."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from daemon.batch import Batch, Item
from daemon.metrics import Metrics
from daemon.sinks.kafka import prediction_records
from daemon.sinks.postgres import PREDICTION_COLUMNS, prediction_rows
from daemon.worker import InferenceWorker
from models.base import BatchResult
from models.languages import LanguageSupport
from models.spec import load_spec
from schemas.messages import InboundMessage
from schemas.settings import RetrySettings
from tests.daemon.harness import DaemonThread, count, make_settings, make_topics, produce, read_topic, tweet, wait_for

KO = "이 영화 정말 재밌어요 배우들 연기가 최고"
EN = "the new update is awful, my phone keeps crashing"


class FixedClassifier:
    """No model: fixed probabilities; the language support of a real spec; records routing attributes."""

    labels = ("negative", "positive")
    model_version = "fixed"

    def __init__(self, spec_changes: dict | None = None, routed: bool = False) -> None:
        spec = load_spec("minilm-lora-sst2")
        self.language_support = LanguageSupport.of(spec.with_overrides(**spec_changes) if spec_changes else spec)
        self.routed = routed
        self.attrs: list[dict] = []

    def classify(self, texts: Sequence[str], attrs: Sequence[dict] | None = None) -> BatchResult:
        self.attrs += attrs or []
        probs = np.tile(np.array([[0.25, 0.75]], dtype=np.float32), (len(texts), 1))
        return BatchResult(probs=probs, adapter_versions=(None,) * len(texts))


def batch_of(*messages: tuple[str, str | None]) -> Batch:
    return Batch(items=[Item(InboundMessage(id=f"m{i}", text=t, lang=lang), "in", 0, i, 0, None, t.encode())
                        for i, (t, lang) in enumerate(messages)])


def process(clf, batch: Batch) -> Metrics:
    metrics = Metrics()
    InferenceWorker(clf, RetrySettings(), metrics, 1).process(batch)
    return metrics


def test_worker_flags_languages_the_spec_does_not_serve():
    batch = batch_of((EN, None), (KO, None), (KO, "ko-KR"), (EN, "fr"), (KO, "en"), ("😂😂😂", None))
    metrics = process(FixedClassifier(), batch)
    got = [(p.lang, p.lang_supported, p.label) for p in batch.predictions]
    # Every message is classified; a given lang wins over the text; nothing detected is unknown.
    assert got == [("en", True, "positive"), ("ko", False, "positive"), ("ko-KR", False, "positive"),
                   ("fr", False, "positive"), ("en", True, "positive"), (None, None, "positive")]
    sample = metrics.registry.get_sample_value
    assert sample("sentistream_unsupported_language_total", {"lang": "ko"}) == 2
    assert sample("sentistream_unsupported_language_total", {"lang": "fr"}) == 1


def test_rows_and_output_records_carry_the_language():
    batch = batch_of((EN, None), (KO, None))
    process(FixedClassifier(), batch)
    rows = [dict(zip(PREDICTION_COLUMNS, r)) for r in prediction_rows(batch)]
    assert [(r["lang"], r["lang_supported"]) for r in rows] == [("en", True), ("ko", False)]
    records = [json.loads(value) for _, value, _ in prediction_records(batch)]
    assert [(r["lang"], r["lang_supported"]) for r in records] == [("en", True), ("ko", False)]


def test_spec_without_languages_detects_nothing():
    batch = batch_of((KO, None), (EN, "en"))
    metrics = process(FixedClassifier({"languages": []}), batch)
    assert [(p.lang, p.lang_supported) for p in batch.predictions] == [(None, None), ("en", None)]
    assert metrics.registry.get_sample_value("sentistream_unsupported_language_total", {"lang": "ko"}) is None


def test_detected_language_routes_and_is_served_by_its_route():
    clf = FixedClassifier({"adapters": [{"name": "korean", "path": "/adapters/korean"}],
                           "routes": [{"adapter": "korean", "lang": "ko"}]}, routed=True)
    batch = batch_of((KO, None), (EN, None))
    process(clf, batch)
    assert [a["lang"] for a in clf.attrs] == ["ko", "en"]
    assert [(p.lang, p.lang_supported) for p in batch.predictions] == [("ko", True), ("en", True)]


@pytest.mark.kafka
def test_korean_message_through_the_default_preset(broker, topic_names, database_url):
    topics = make_topics(broker, topic_names, partitions=1)
    # No model.path: the default preset (MiniLM + the shipped SST-2 adapter, languages [en]).
    settings = make_settings(broker, database_url, topics, None)
    produce(broker, topics["input"], [tweet(0, KO), tweet(1, EN), tweet(2, KO, lang="ko")])
    with DaemonThread(settings) as d:
        assert wait_for(lambda: count(database_url, "select count(*) from predictions") == 3, timeout=120)
        records = {r.key.decode(): json.loads(r.value) for r in read_topic(broker, topics["output"], expect=3)}
        metric = d.daemon.metrics.registry.get_sample_value("sentistream_unsupported_language_total", {"lang": "ko"})
        assert d.stop() == 0
    eng = create_engine(database_url)
    with eng.connect() as c:
        rows = {m: (lang, ok) for m, lang, ok in c.execute(text(
            "select message_id, lang, lang_supported from predictions"))}
    eng.dispose()
    expected = {"m0": ("ko", False), "m1": ("en", True), "m2": ("ko", False)}
    assert rows == expected
    assert {m: (r["lang"], r["lang_supported"]) for m, r in records.items()} == expected
    assert all(r["label"] in ("negative", "positive") for r in records.values())
    assert metric == 2

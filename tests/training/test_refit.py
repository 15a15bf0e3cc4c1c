"""A small end-to-end refit on a tiny BERT: labels table → fit → gold metrics → registry → gate,
and the saved adapter (head included) reloads through models/ with the same predictions."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from models.checks import adapter_sha256
from models.loading import load_classifier
from schemas.db import make_engine
from schemas.settings import ModelSettings, Settings, TrainingSettings
from training import registry
from training.labels import write_labels
from training.service import run_once
from training.splits import three_way
from tests.training.factories import synthetic


@pytest.fixture
def cfg(tiny_bert_dir, tmp_path) -> TrainingSettings:
    return TrainingSettings(
        base_model=tiny_bert_dir, adapters_dir=tmp_path / "adapters", reports_dir=tmp_path / "reports",
        max_length=16, lora_r=8, lora_alpha=16, lora_dropout=0.0, learning_rate=1e-2, batch_size=16,
        # A random tiny base has no useful features: LoRA on the word embeddings lets it learn in
        # a few epochs (a pretrained base needs no such help).
        target_modules=("query", "value", "word_embeddings"),
        epochs=4, min_new_labels=100, gold_fraction=0.2, val_fraction=0.15, early_stopping_patience=1,
    )


def test_refit_promotes_then_gates(database_url, cfg):
    engine = make_engine(database_url)
    settings = Settings(database={"url": database_url})
    assert run_once(settings, cfg, engine=engine, progress=False).action == "skipped"

    write_labels(engine, synthetic(400, seed=1), labeled_by="test", origin="import")
    first = run_once(settings, cfg, engine=engine, progress=False)
    assert first.action == "promoted", first
    assert first.decision.reasons == ["no active adapter"]
    assert first.scores.candidate["macro_f1"] > 0.9  # the word lists separate the classes cleanly
    row = registry.active(engine, cfg.adapter_name)
    assert row["version"] == first.version and row["label_watermark"] == 400
    adapter_dir = row["artifact_path"]
    assert row["sha256"] == adapter_sha256(adapter_dir)
    report = cfg.reports_dir / row["version"]
    assert {p.name for p in report.iterdir()} == {"metrics.json", "report.md", "confusion_matrix.png", "curves.png"}
    assert json.loads((report / "metrics.json").read_text())["metrics"]["macro_f1"] == first.scores.candidate["macro_f1"]

    # The gold set never reaches training: its ids are disjoint from train and val.
    examples = synthetic(400, seed=1)
    train, val, gold = three_way(examples, cfg.gold_fraction, cfg.val_fraction)
    assert gold and not {e.message_id for e in gold} & {e.message_id for e in train + val}
    counts = row["metrics"]["counts"]
    assert counts == {"train": len(train), "val": len(val), "gold": len(gold), "gold_slice_ignored": 0,
                      "new_labels_checked": len(train)}
    # The console's drift check compares live label shares to these.
    assert row["metrics"]["train_label_counts"] == dict(sorted(Counter(e.label for e in train).items()))

    # Reloaded as the daemon loads it: the classification head survives, predictions match the gold
    # metrics. fp32 (not the default auto), as the trainer measures the gold set.
    clf = load_classifier(ModelSettings(path=cfg.base_model, adapter_path=adapter_dir, adapter_version=row["version"],
                                        adapter_sha256=row["sha256"], labels=cfg.labels, device="cpu",
                                        max_length=cfg.max_length, precision="fp32"))
    probs = clf.classify([e.text for e in gold]).probs
    truth = np.array([cfg.labels.index(e.label) for e in gold])
    acc = float((probs.argmax(1) == truth).mean())
    assert acc == pytest.approx(row["metrics"]["gold"]["accuracy"], abs=1e-9)

    # Not enough new labels: nothing happens.
    assert run_once(settings, cfg, engine=engine, progress=False).action == "skipped"

    # New labels, but a candidate must beat the active one by an impossible margin: rejected, kept.
    write_labels(engine, synthetic(150, seed=2, start=1000), labeled_by="test", origin="import")
    strict = cfg.model_copy(update={"promote_margin": 0.5, "warm_start": True})
    second = run_once(settings, strict, engine=engine, progress=False)
    assert second.action == "rejected"
    assert "does not beat active" in second.decision.reasons[0]
    assert registry.active(engine, cfg.adapter_name)["version"] == first.version
    cand = registry.get(engine, second.version)
    assert cand["status"] == "rejected" and cand["parent_version"] == first.version
    assert cand["metrics"]["active_gold"]["macro_f1"] == second.scores.active["macro_f1"]
    engine.dispose()


def test_refit_rejects_a_round_of_noisy_labels(database_url, cfg):
    engine = make_engine(database_url)
    settings = Settings(database={"url": database_url})
    write_labels(engine, synthetic(400, seed=1), labeled_by="test", origin="import")
    assert run_once(settings, cfg, engine=engine, progress=False).action == "promoted"
    # Every new label flipped: the active adapter contradicts them far more often than it errs on gold.
    flip = {"negative": "positive", "positive": "negative"}
    noisy = [replace(e, label=flip[e.label]) for e in synthetic(150, seed=2, start=1000)]
    write_labels(engine, noisy, labeled_by="crowd", origin="import")
    second = run_once(settings, cfg, engine=engine, progress=False)
    assert second.action == "rejected", second
    assert second.scores.new_label_error > 0.5
    assert any("noisy labels?" in r for r in second.decision.reasons), second.decision.reasons
    row = registry.get(engine, second.version)
    assert row["metrics"]["counts"]["new_labels_checked"] > 0
    engine.dispose()


def test_an_unscored_active_adapter_is_scored_by_the_first_refit(database_url, cfg, tiny_bert_dir, tmp_path):
    from tests.factories import build_lora_adapter

    engine = make_engine(database_url)
    settings = Settings(database={"url": database_url})
    # Active with no metrics, as the shipped adapter is seeded (here on the tiny base, which the
    # shipped MiniLM adapter does not fit: nothing is seeded for this configuration).
    v1 = build_lora_adapter(tiny_bert_dir, tmp_path / "v1", seed=0)
    registry.register(engine, name=cfg.adapter_name, version="v1", kind="lora", base_model="tiny-bert",
                      artifact_path=v1, sha256=adapter_sha256(v1), metrics={}, parent_version=None,
                      label_watermark=0)
    registry.promote(engine, "v1", channel=cfg.notify_channel)
    write_labels(engine, synthetic(400, seed=1), labeled_by="test", origin="import")
    out = run_once(settings, cfg, engine=engine, progress=False)
    assert out.decision.reasons != ["no active adapter"] and registry.get(engine, "minilm-sst2") is None
    scored = registry.get(engine, "v1")["metrics"]
    assert scored["gold"]["macro_f1"] == out.scores.active["macro_f1"] and scored["gold_scored_by"] == out.version
    assert scored["gold"] == registry.get(engine, out.version)["metrics"]["active_gold"]
    # Recorded once: neither that score nor a refit's own gold metrics are overwritten.
    for version in ("v1", out.version):
        before = registry.get(engine, version)["metrics"]
        assert not registry.record_gold(engine, version, {"macro_f1": 0.0}, scored_by="later")
        assert registry.get(engine, version)["metrics"] == before
    engine.dispose()

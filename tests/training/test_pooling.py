"""``training.pooling``: the trainer records the pooling it used, and the one loading path (settings,
a model spec, the gate's evaluation of the active adapter) serves the adapter with it; warm-start
training continues with it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from models.classifier import SpecClassifier
from models.errors import AdapterError
from models.loading import load_classifier
from models.pooling import pooling_of
from schemas.settings import ModelSettings
from training.service import evaluate_adapter
from training.trainer import build_model, fit
from tests.training.factories import settings, spec_for, trained_probs


@pytest.fixture(scope="module")
def mean_adapter(tiny_bert_dir, data, tmp_path_factory):
    train, val, _ = data
    cfg = settings(tiny_bert_dir, "lora", pooling="mean", frozen_layers=1)
    out = tmp_path_factory.mktemp("mean") / "adapter"
    return cfg, fit(cfg, tiny_bert_dir, train, val, out, progress=False), out


def test_trained_pooling_is_recorded_and_served_by_every_loader(tiny_bert_dir, data, mean_adapter, tmp_path):
    cfg, res, out = mean_adapter
    test = data[2]
    texts = [e.text for e in test]
    assert json.loads((out / "sentistream_training.json").read_text())["pooling"] == "mean"
    ours = trained_probs(res, cfg, test)

    # fp32 (not the default auto): compared with the trainer's fp32 predictions.
    plain = load_classifier(ModelSettings(path=tiny_bert_dir, adapter_path=out, device="cpu", max_length=16,
                                          precision="fp32"))
    assert pooling_of(plain.model) == "mean"
    assert np.abs(plain.classify(texts).probs - ours).max() <= 1e-4
    spec = SpecClassifier(spec_for(tiny_bert_dir, out, "lora"))
    assert np.abs(spec.classify(texts).probs - ours).max() <= 1e-4

    # Without the record the same weights are served through [CLS], and predict something else.
    bare = tmp_path / "bare"
    shutil.copytree(out, bare)
    (bare / "sentistream_training.json").unlink()
    cls = load_classifier(ModelSettings(path=tiny_bert_dir, adapter_path=bare, device="cpu", max_length=16,
                                        precision="fp32"))
    assert pooling_of(cls.model) == "cls"
    assert np.abs(cls.classify(texts).probs - ours).max() > 1e-3


def test_the_active_adapters_pooling_wins_over_the_setting_when_evaluating_it(tiny_bert_dir, data, mean_adapter):
    trained_cfg, res, out = mean_adapter
    cfg = settings(tiny_bert_dir, "lora", pooling="cls")
    test = data[2]
    # The gate's evaluation: mean pooling, so the trained model's own accuracy.
    (gate,) = evaluate_adapter(cfg, out, test)
    truth = np.array([cfg.labels.index(e.label) for e in test])
    assert gate["accuracy"] == pytest.approx(float((trained_probs(res, trained_cfg, test).argmax(1) == truth).mean()))
    # Warm-start training continues from the adapter with its pooling.
    assert pooling_of(build_model(cfg, tiny_bert_dir, cfg.labels, warm_start=out)) == "mean"
    assert pooling_of(build_model(cfg, tiny_bert_dir, cfg.labels)) == "cls"
    # auto on a base that is no sentence-transformers model: [CLS].
    auto = settings(tiny_bert_dir, "lora", pooling="auto")
    assert pooling_of(build_model(auto, tiny_bert_dir, auto.labels)) == "cls"


def test_a_spec_mixing_poolings_is_refused_at_load(tiny_bert_dir, mean_adapter, tmp_path):
    _, _, out = mean_adapter
    other = tmp_path / "cls"
    shutil.copytree(out, other)
    meta = json.loads((other / "sentistream_training.json").read_text())
    (other / "sentistream_training.json").write_text(json.dumps(meta | {"pooling": "cls"}))
    spec = spec_for(tiny_bert_dir, out, "lora").with_overrides(
        adapters=[{"name": "other", "path": str(other), "version": "o"}])
    with pytest.raises(AdapterError, match="different poolings"):
        SpecClassifier(spec)

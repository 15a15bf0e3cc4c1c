"""QLoRA, SpaRTA and head-only training on a tiny BERT: each trains, saves its real on-disk format,
changes only the parameters it should, and reloads through models/ (the daemon's loader) with the
predictions of the in-memory trained model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from pydantic import ValidationError
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, BertModel

from models.checks import adapter_sha256
from models.classifier import SpecClassifier
from models.loading import load_classifier
from models.sparta import load_sparta
from schemas.errors import ConfigError
from schemas.settings import ModelSettings, TrainingSettings, load_settings
from training.errors import TrainingError
from training.service import evaluate_adapter
from training.trainer import build_model, fit
from tests.factories import copy_tokenizer
from tests.training.factories import settings, spec_for, synthetic, trained_probs

HEAD = ("classifier.weight", "classifier.bias", "bert.pooler.dense.weight", "bert.pooler.dense.bias")
TARGETS = [f"bert.encoder.layer.{i}.attention.{m}.weight" for i in (0, 1) for m in ("self.value", "output.dense")] + [
    "bert.embeddings.word_embeddings.weight"]


def base_state(base) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)  # as models/ loads it: a head the base lacks is initialised under seed 0
    return AutoModelForSequenceClassification.from_pretrained(base, num_labels=2).state_dict()


def served_state(clf) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in clf.model.state_dict().items()}


@pytest.fixture(scope="module")
def headless_bert_dir(tiny_bert_dir, tmp_path_factory):
    """The same encoder saved without a classification head (like MiniLM): the head starts random."""
    out = tmp_path_factory.mktemp("headless-bert")
    BertModel.from_pretrained(tiny_bert_dir).save_pretrained(out, safe_serialization=True)
    copy_tokenizer(tiny_bert_dir, out)
    return out


def test_sparta_trains_only_sampled_entries_and_reloads_in_peft_sparta_format(tiny_bert_dir, data, tmp_path):
    train, val, test = data
    # A random tiny base has no useful features: sparse entries of the word embeddings let it learn.
    cfg = settings(tiny_bert_dir, "sparta", sparta_sparsity=0.5, learning_rate=2e-2, epochs=4, warmup_ratio=0.1,
                   sparta_target_modules=("value", "attention.output.dense", "word_embeddings"))
    out = tmp_path / "sparta"
    res = fit(cfg, tiny_bert_dir, train, val, out, progress=False)
    losses = [r["train_loss"] for r in res.history]
    assert losses[-1] < 0.8 * losses[0] and res.best["accuracy"] > 0.8

    assert {p.name for p in out.iterdir()} == {"config.json", "sparse_deltas.safetensors", "sentistream_training.json"}
    raw = load_file(out / "sparse_deltas.safetensors")
    assert set(raw) == {f"{k}.{n}" for k in ("indices", "deltas") for n in TARGETS + list(HEAD)}
    assert all(raw[f"indices.{n}"].dtype == torch.int32 for n in TARGETS)
    adapter = load_sparta(out)
    assert adapter.base_model == str(tiny_bert_dir) and adapter.config["id2label"] == {"0": "negative", "1": "positive"}
    base = base_state(tiny_bert_dir)
    for n in TARGETS:  # exactly half of each target's entries, distinct
        idx = adapter.indices[n].long()
        assert idx.shape[0] == round(0.5 * base[n].numel()) == torch.unique(idx, dim=0).shape[0]
    meta = json.loads((out / "sentistream_training.json").read_text())
    assert meta["method"] == "sparta" and meta["hyperparameters"]["sparta_sparsity"] == 0.5

    # Loaded as the daemon's hot swap does: a spec file with adapter.kind sparta, the registry's
    # path and sha256 as settings.
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec_for(tiny_bert_dir, None, "sparta").model_dump(mode="json")))
    clf = load_classifier(ModelSettings(spec_file=spec_file, adapter_path=out, adapter_version="v1",
                                        adapter_sha256=adapter_sha256(out)))
    assert clf.adapter_version == "v1"
    texts = [e.text for e in test]
    assert np.abs(clf.classify(texts).probs - trained_probs(res, cfg, test)).max() <= 1e-4
    served = served_state(clf)
    for name, w0 in base.items():
        w = served[name]
        if name in TARGETS:
            mask = torch.zeros_like(w0, dtype=torch.bool)
            mask[tuple(adapter.indices[name].long().unbind(1))] = True
            assert torch.equal(w[~mask], w0[~mask]), name  # non-selected entries untouched
            # Embedding rows of tokens the data never uses get no gradient.
            assert (w[mask] != w0[mask]).float().mean() > (0.05 if "embeddings" in name else 0.5), name
        elif name in HEAD:
            assert not torch.equal(w, w0), name
        else:
            assert torch.equal(w, w0), name

    # The gate evaluates an active SpaRTA adapter through the daemon's loader: the trained model's metrics.
    (gate,) = evaluate_adapter(cfg, out, test, sha256=adapter_sha256(out))
    truth = np.array([cfg.labels.index(e.label) for e in test])
    assert gate["accuracy"] == pytest.approx(float((trained_probs(res, cfg, test).argmax(1) == truth).mean()))
    with pytest.raises(TrainingError, match="warm_start"):
        fit(cfg, tiny_bert_dir, train, val, tmp_path / "again", warm_start=out, progress=False)


@pytest.mark.parametrize("headless", [False, True], ids=["base-with-head", "headless-base"])
def test_head_only_changes_only_the_head_and_reloads(tiny_bert_dir, headless_bert_dir, data, tmp_path, headless):
    base_dir = headless_bert_dir if headless else tiny_bert_dir
    train, val, test = data
    cfg = settings(base_dir, "head", learning_rate=5e-2)
    out = tmp_path / "head"
    res = fit(cfg, base_dir, train, val, out, progress=False)
    losses = [r["train_loss"] for r in res.history]
    assert losses[-1] < losses[0]
    assert {p.name for p in out.iterdir()} == {"config.json", "sparse_deltas.safetensors", "sentistream_training.json"}
    assert set(load_sparta(out).nonzero) == set(HEAD)

    clf = SpecClassifier(spec_for(base_dir, out, "sparta"))
    # The head's deltas are against the head models/ initialises: exact on a headless base too.
    assert np.abs(clf.classify([e.text for e in test]).probs - trained_probs(res, cfg, test)).max() <= 1e-4
    base, served = base_state(base_dir), served_state(clf)
    assert set(base) == set(served)
    changed = {n for n in base if not torch.equal(base[n], served[n])}
    assert changed == set(HEAD)
    # Settings with no preset and no spec file recognise the SpaRTA-format files, as the hot swap
    # must when the trainer promotes a head-only or SpaRTA adapter.
    plain = load_classifier(ModelSettings(path=base_dir, adapter_path=out, adapter_version="v2", device="cpu",
                                          max_length=16))
    assert isinstance(plain, SpecClassifier)
    result = plain.classify([e.text for e in test])
    assert np.abs(result.probs - trained_probs(res, cfg, test)).max() <= 1e-4
    assert set(result.adapter_versions) == {"v2"}


def test_qlora_trains_on_a_4bit_base_and_reloads_on_the_same_base(tiny_bert_dir, data, tmp_path):
    pytest.importorskip("bitsandbytes")
    train, val, test = data
    cfg = settings(tiny_bert_dir, "qlora", qlora_compute_dtype="float32")
    out = tmp_path / "qlora"
    res = fit(cfg, tiny_bert_dir, train, val, out, progress=False)
    losses = [r["train_loss"] for r in res.history]
    assert losses[-1] < losses[0]
    value = res.model.base_model.model.bert.encoder.layer[0].attention.self.value
    assert type(value.base_layer).__name__ == "Linear4bit"
    assert type(res.model.base_model.model.classifier.modules_to_save["default"]).__name__ == "Linear"

    assert {p.name for p in out.iterdir()} == {"adapter_config.json", "adapter_model.safetensors",
                                               "sentistream_training.json"}
    conf = json.loads((out / "adapter_config.json").read_text())
    assert conf["peft_type"] == "LORA" and "classifier" in conf["modules_to_save"]
    weights = load_file(out / "adapter_model.safetensors")
    assert any("classifier" in k and "lora_" not in k for k in weights)
    assert all(v.dtype == torch.float32 for v in weights.values())
    meta = json.loads((out / "sentistream_training.json").read_text())
    assert meta["quantized_base"] == {"bits": 4, "quant_type": "nf4", "double_quant": True, "compute_dtype": "float32"}

    q = {"quantization.mode": "nf4", "quantization.double_quant": True, "quantization.compute_dtype": "float32"}
    clf = SpecClassifier(spec_for(tiny_bert_dir, out, "lora", **q))
    served = clf.classify([e.text for e in test]).probs
    ours = trained_probs(res, cfg, test)
    assert (served.argmax(1) == ours.argmax(1)).all()
    assert np.abs(served - ours).max() <= 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="paged 8-bit AdamW needs CUDA")
def test_qlora_on_cuda_uses_paged_8bit_adamw(tiny_bert_dir, data, tmp_path):
    from training.trainer import make_optimizer

    cfg = settings(tiny_bert_dir, "qlora", epochs=1)
    model = build_model(cfg, tiny_bert_dir, cfg.labels)
    params = [p for p in model.parameters() if p.requires_grad]
    assert params[0].device.type == "cuda"
    assert type(make_optimizer(cfg, params)).__name__ == "PagedAdamW8bit"
    res = fit(cfg, tiny_bert_dir, *data[:2], tmp_path / "qlora", progress=False)
    assert res.history and (tmp_path / "qlora" / "adapter_model.safetensors").is_file()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["lora", "head", "sparta"])
def test_training_device_auto_trains_on_cuda(method, tiny_bert_dir, data, tmp_path):
    cfg = settings(tiny_bert_dir, method, epochs=1, precision="bf16")
    res = fit(cfg, tiny_bert_dir, *data[:2], tmp_path / method, progress=False)
    assert {p.device.type for p in res.model.parameters()} == {"cuda"}
    served = SpecClassifier(spec_for(tiny_bert_dir, tmp_path / method, "lora" if method == "lora" else "sparta"))
    probs = served.classify([e.text for e in data[2]]).probs
    assert np.abs(probs - trained_probs(res, cfg, data[2])).max() <= 1e-3


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a CUDA device")
def test_training_device_cuda_without_a_gpu_fails_naming_the_setting(tiny_bert_dir):
    with pytest.raises(TrainingError, match=r"training\.device is 'cuda'"):
        build_model(settings(tiny_bert_dir, "lora", device="cuda"), tiny_bert_dir, ("negative", "positive"))
    model = build_model(settings(tiny_bert_dir, "lora"), tiny_bert_dir, ("negative", "positive"))
    assert next(model.parameters()).device.type == "cpu"


def test_bad_method_settings_fail_at_validation_naming_the_setting(tiny_bert_dir, data, tmp_path):
    with pytest.raises(ValidationError, match="method"):
        TrainingSettings(method="dora")
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match=r"training\.sparta_sparsity"):
            load_settings(training={"sparta_sparsity": bad})
    with pytest.raises(ConfigError, match=r"training\.sparta_target_modules"):
        load_settings(training={"sparta_target_modules": []})
    cfg = settings(tiny_bert_dir, "sparta", sparta_target_modules=("no_such_module",))
    with pytest.raises(TrainingError, match="training.sparta_target_modules"):
        fit(cfg, tiny_bert_dir, *data[:2], tmp_path / "x", progress=False)


def test_train_cli_with_head_method(tiny_bert_dir, tmp_path, capsys):
    from schemas.cli import main

    rows = ["sentence\tlabel"] + [f"{w} movie and food {i}\t{lab}" for i in range(40)
                                  for w, lab in (("great", 1), ("worst", 0))]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "adapter"
    code = main(["train", "--train-file", str(tmp_path / "train.tsv"), "--out", str(out),
                 "--set", f"base_model={tiny_bert_dir}", "--set", "method=head", "--set", "epochs=1",
                 "--set", "val_fraction=0.2"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["train"] > 0
    assert json.loads((out / "sentistream_training.json").read_text())["method"] == "head"
    assert (out / "sparse_deltas.safetensors").is_file()


def test_trainer_service_refits_head_only_and_gates_against_the_active_one(database_url, tiny_bert_dir, tmp_path):
    """`train --once` with method=head: registered with its kind, promoted, and the next refit
    measures the active (SpaRTA-format) adapter as models/ serves it."""
    from sklearn.metrics import f1_score

    from schemas.db import make_engine
    from schemas.settings import Settings
    from training import registry
    from training.labels import write_labels
    from training.service import run_once
    from training.splits import three_way

    engine = make_engine(database_url)
    cfg = settings(tiny_bert_dir, "head", learning_rate=5e-2, adapters_dir=tmp_path / "adapters",
                   reports_dir=tmp_path / "reports", min_new_labels=100, gold_fraction=0.2, val_fraction=0.15)
    app = Settings(database={"url": database_url})
    write_labels(engine, synthetic(300, seed=1), labeled_by="test", origin="import")
    first = run_once(app, cfg, engine=engine, progress=False)
    assert first.action == "promoted", first
    row = registry.active(engine, cfg.adapter_name)
    assert row["kind"] == "head" and set(load_sparta(row["artifact_path"]).nonzero) == set(HEAD)

    write_labels(engine, synthetic(150, seed=2, start=1000), labeled_by="test", origin="import")
    second = run_once(app, cfg.model_copy(update={"promote_margin": 0.5}), engine=engine, progress=False)
    assert second.action == "rejected"
    _, _, gold = three_way(synthetic(300, seed=1) + synthetic(150, seed=2, start=1000), 0.2, 0.15)
    clf = SpecClassifier(spec_for(tiny_bert_dir, row["artifact_path"], "sparta"))
    served = clf.classify([e.text for e in gold]).probs.argmax(1)
    truth = [cfg.labels.index(e.label) for e in gold]
    assert second.scores.active["macro_f1"] == pytest.approx(f1_score(truth, served, average="macro"), abs=1e-9)
    engine.dispose()

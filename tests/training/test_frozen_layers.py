"""``training.frozen_layers``: the bottom layers run once per example, the adapter covers only the
layers above, and the result loads in the daemon with the predictions of the trained model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, GPT2Config, GPT2ForSequenceClassification

from models.classifier import SpecClassifier
from training.errors import TrainingError
from training.batches import collate
from training.tasks import HeadTask
from training.frozen_layers import FrozenLayersCache, targets_above
from training.trainer import build_model, fill_frozen_layers_cache, fit
from tests.factories import copy_tokenizer
from tests.training.factories import settings, spec_for, trained_probs


def cached_and_full_logits(model, cache: FrozenLayersCache, enc, idx) -> tuple[torch.Tensor, torch.Tensor]:
    batch = collate(enc, idx, 0)
    with torch.no_grad():
        full = model(**batch).logits
        with cache.feeding(cache.padded(idx, batch["input_ids"].shape[1])):
            cached = model(**batch).logits
    return full, cached


def test_model_fed_from_the_cache_computes_what_the_whole_model_computes(tiny_bert_dir, data):
    cfg = settings(tiny_bert_dir, "lora", frozen_layers=1, target_modules="all-linear")
    model = build_model(cfg, tiny_bert_dir, cfg.labels).eval()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    enc = HeadTask(tok, cfg.labels, cfg.max_length).encode(data[0])
    cache = fill_frozen_layers_cache(model, cfg, enc, tok.pad_token_id, torch.device("cpu"))
    assert len(cache.states) == len(enc)
    assert [len(s) for s in cache.states] == [len(ids) for ids in enc.input_ids]  # stored without padding
    full, cached = cached_and_full_logits(model, cache, enc, np.arange(0, 64, 3))
    assert torch.allclose(full, cached, atol=1e-5)
    # The layer stack is whole again outside ``feeding``: the saved adapter's names stay right.
    assert len(model.base_model.model.bert.encoder.layer) == 2


def test_gpt2_blocks_and_conv1d_targets_are_found():
    torch.manual_seed(0)
    model = GPT2ForSequenceClassification(GPT2Config(n_layer=3, n_embd=32, n_head=2, vocab_size=50, pad_token_id=0))
    names = targets_above(model, "all-linear", 2)
    assert names == [f"transformer.h.2.{m}" for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
    assert targets_above(model, ("c_attn",), 1) == ["transformer.h.1.attn.c_attn", "transformer.h.2.attn.c_attn"]
    for p in model.parameters():
        p.requires_grad_(False)
    cache = FrozenLayersCache(model.eval(), 2)
    ids = torch.randint(1, 50, (4, 7))
    batch = [(list(range(4)), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, [7] * 4)]
    cache.fill(batch, 4, torch.float32, autocast=False)
    with torch.no_grad():
        full = model(input_ids=ids).logits
        with cache.feeding(cache.padded([0, 1, 2, 3], 7)):
            cached = model(input_ids=ids).logits
    assert torch.allclose(full, cached, atol=1e-5)


@pytest.fixture(scope="module")
def dropout_free_bert(tiny_bert_dir, tmp_path_factory):
    """The tiny BERT without dropout: training through the cache must then equal training without it."""
    out = tmp_path_factory.mktemp("bert-no-dropout")
    AutoModelForSequenceClassification.from_pretrained(
        tiny_bert_dir, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).save_pretrained(out)
    copy_tokenizer(tiny_bert_dir, out)
    return out


def test_training_through_the_cache_equals_training_the_same_layers_without_it(dropout_free_bert, data, tmp_path):
    base = dropout_free_bert
    train, val, test = data
    cfg = settings(base, "lora", frozen_layers=1)
    res = fit(cfg, base, train, val, tmp_path / "cached", progress=False)
    upper = targets_above(AutoModelForSequenceClassification.from_pretrained(base), cfg.target_modules, 1)
    plain = fit(settings(base, "lora", target_modules=tuple(upper)), base, train, val, tmp_path / "plain",
                progress=False)
    assert [r["train_loss"] for r in res.history] == pytest.approx([r["train_loss"] for r in plain.history],
                                                                    abs=1e-5)
    ours, theirs = (load_file(tmp_path / d / "adapter_model.safetensors") for d in ("cached", "plain"))
    assert set(ours) == set(theirs)
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-5) for k in ours)

    conf = json.loads((tmp_path / "cached" / "adapter_config.json").read_text())
    assert sorted(conf["target_modules"]) == sorted(upper) and all(".layer.1." in t for t in upper)
    assert json.loads((tmp_path / "cached" / "sentistream_training.json").read_text()
                      )["hyperparameters"]["frozen_layers"] == 1
    served = SpecClassifier(spec_for(base, tmp_path / "cached", "lora")).classify([e.text for e in test]).probs
    assert np.abs(served - trained_probs(res, cfg, test)).max() <= 1e-4


@pytest.mark.parametrize("method", ["head", "qlora"])
def test_head_and_qlora_take_frozen_layers_too(tiny_bert_dir, data, tmp_path, method):
    if method == "qlora":
        pytest.importorskip("bitsandbytes")
    cfg = settings(tiny_bert_dir, method, frozen_layers=1, learning_rate=5e-2 if method == "head" else 1e-2,
                   qlora_compute_dtype="float32")
    res = fit(cfg, tiny_bert_dir, *data[:2], tmp_path / method, progress=False)
    assert len(res.history) == 3 and all(np.isfinite(r["train_loss"]) for r in res.history)
    trained = {n for n, p in res.model.named_parameters() if p.requires_grad}
    assert trained and not any(".layer.0." in n for n in trained)
    assert (tmp_path / method / "sentistream_training.json").is_file()


def test_bad_frozen_layers_fail_before_training_with_the_setting_named(tiny_bert_dir, data, tmp_path):
    for n in (2, 5):  # the tiny BERT has 2 layers: at least one must stay trainable
        with pytest.raises(TrainingError, match=r"training.frozen_layers = \d: the model has 2 layers"):
            fit(settings(tiny_bert_dir, "lora", frozen_layers=n), tiny_bert_dir, *data[:2], tmp_path / "x",
                progress=False)
    # SpaRTA samples trainable entries in every layer: the cache would feed stale outputs.
    cfg = settings(tiny_bert_dir, "sparta", frozen_layers=1, sparta_target_modules=("value",))
    with pytest.raises(TrainingError, match=r"training.frozen_layers = 1: parameters in those layers would train"):
        fit(cfg, tiny_bert_dir, *data[:2], tmp_path / "y", progress=False)

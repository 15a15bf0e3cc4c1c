"""Training a causal-LM spec's prompt + label words (``training.spec``): the adapter learns what the
daemon serves, through the same prompt and the same one-pass verbalizer head."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models.loading import load_classifier
from schemas.settings import ModelSettings
from training.batches import Encoded, collate
from training.errors import TrainingError
from training.tasks import evaluate_examples, predict_examples
from training.trainer import fit
from tests.models.factories import build_causal_base
from tests.training.factories import settings

# S1's labels; the synthetic examples use two of them, the third stays absent (class weights "auto").
LABELS = ("negative", "neutral", "positive")


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return build_causal_base(tmp_path_factory.mktemp("llama"), "llama")


def verbalizer_settings(base, method="lora", **kw):
    # s1: the TinyLlama card's system prompt and chat template, on a tiny llama of the same architecture.
    # All attention projections and small batches: a random 2-layer model must learn to attend from
    # the answer position to one word among the ~30 tokens of the card's system prompt.
    return settings(base, method, **{"spec": "s1", "labels": LABELS, "learning_rate": 1e-2, "epochs": 6,
                                     "target_modules": ("q_proj", "k_proj", "v_proj", "o_proj"), "batch_size": 8,
                                     "warmup_ratio": 0.1, **kw})


@pytest.fixture(scope="module")
def fitted(llama_dir, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("s1-adapter") / "adapter"
    return fit(verbalizer_settings(llama_dir), llama_dir, data[0], data[1], out, progress=False), out


def test_the_adapter_learns_to_answer_with_the_label_words(fitted, data):
    res, _ = fitted
    assert res.history[0]["val"]["accuracy"] <= 0.6  # a random model does not know the task
    assert evaluate_examples(res.model, res.task, data[2])["accuracy"] >= 0.75  # held-out test examples


def test_the_daemon_serves_what_the_trainer_measured(fitted, data, llama_dir):
    """The saved adapter through the daemon's loader (the s1 preset, fp32 on CPU as trained) scores
    the held-out examples as the trainer's own head did."""
    res, out = fitted
    clf = load_classifier(ModelSettings(preset="s1", path=llama_dir, adapter_path=out, device="cpu",
                                        precision="fp32"))
    served = clf.classify([e.text for e in data[2]]).probs
    trained = predict_examples(res.model, res.task, data[2])
    assert np.abs(served - trained).max() < 1e-4


def test_the_adapter_is_a_causal_lm_lora_without_a_head(fitted):
    _, out = fitted
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM" and not config["modules_to_save"]
    from safetensors import safe_open

    with safe_open(out / "adapter_model.safetensors", framework="pt") as f:
        assert all("lora_" in k for k in f.keys())
    meta = json.loads((out / "sentistream_training.json").read_text())
    assert (meta["spec"], meta["head"], meta["labels"]) == ("s1-tinyllama-qlora-tweeteval", "causal_lm_verbalizer",
                                                            list(LABELS))


def test_qlora_trains_the_verbalizer_on_a_4bit_base(llama_dir, data, tmp_path):
    cfg = verbalizer_settings(llama_dir, "qlora", epochs=1, qlora_compute_dtype="float32")
    res = fit(cfg, llama_dir, data[0][:64], data[1][:16], tmp_path / "q", progress=False)
    assert np.isfinite(res.history[-1]["train_loss"])
    assert type(next(m for m in res.model.modules() if "4bit" in type(m).__name__)).__name__ == "Linear4bit"


@pytest.mark.parametrize(("change", "named"), [
    ({"method": "sparta"}, "training.method"),
    ({"method": "head"}, "training.method"),
    ({"frozen_layers": 1}, "training.frozen_layers"),
    ({"labels": ("negative", "positive")}, "training.labels"),
    ({"spec": "no-such-preset"}, "training.spec"),
])
def test_settings_the_verbalizer_cannot_train_are_one_clear_error(llama_dir, data, tmp_path, change, named):
    cfg = verbalizer_settings(llama_dir).model_copy(update=change)
    with pytest.raises(TrainingError, match=named):
        fit(cfg, llama_dir, data[0][:8], data[1][:4], tmp_path / "x", progress=False)


def test_left_padding_puts_every_answer_position_in_the_last_column():
    enc = Encoded([[5, 6, 7], [8]], np.array([0, 1]), pad_left=True)
    batch = collate(enc, [0, 1], pad_id=0)
    assert batch["input_ids"][:, -1].tolist() == [7, 8]
    assert batch["attention_mask"][1].tolist() == [0] * 7 + [1]
    assert torch.equal(batch["attention_mask"][0][-3:], torch.ones(3, dtype=torch.long))


def test_the_gate_measures_a_registered_card_adapter_as_the_trainer_did(fitted, data, llama_dir):
    """The refit service scores the active adapter through the daemon's loader with training.spec's
    preset (its prompt and labels), in fp32 like the candidate: the same metrics as the trainer's head."""
    from training.service import evaluate_adapter

    res, out = fitted
    cfg = verbalizer_settings(llama_dir)
    measured, = evaluate_adapter(cfg, out, data[2])
    assert measured == evaluate_examples(res.model, res.task, data[2])

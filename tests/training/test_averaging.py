"""The weight average (`training.ema_decay`): its recurrence, and that fit evaluates, keeps and saves
the averaged weights, not the last trained ones."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model_state_dict
from safetensors.torch import load_file

from training.averaging import WeightAverage
from training.tasks import evaluate_examples
from training.trainer import fit
from tests.training.factories import settings


def test_average_follows_the_warmed_up_ema_recurrence_and_swaps_back():
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    avg = WeightAverage(list(layer.parameters()), decay=0.5)
    expected = torch.zeros(1, 2)
    for step, value in enumerate((4.0, 8.0, 2.0), start=1):
        with torch.no_grad():
            layer.weight.fill_(value)
        avg.update()
        decay = min(0.5, (1 + step) / (10 + step))
        expected = decay * expected + (1 - decay) * value
    assert torch.allclose(avg.shadow[0], expected)
    with avg.applied():
        assert torch.allclose(layer.weight, expected)
    assert torch.equal(layer.weight, torch.full((1, 2), 2.0))
    avg.copy_to_model()
    assert torch.allclose(layer.weight, expected)


@pytest.mark.parametrize("keep", ["last", "best"])
def test_fit_saves_the_averaged_weights_it_reported(keep, tiny_bert_dir, data, tmp_path):
    train, val, _ = data
    fit(settings(tiny_bert_dir, "lora", keep=keep), tiny_bert_dir, train, val, tmp_path / "plain", progress=False)
    averaged = fit(settings(tiny_bert_dir, "lora", keep=keep, ema_decay=0.9), tiny_bert_dir, train, val,
                   tmp_path / "ema", progress=False)
    a = load_file(tmp_path / "plain" / "adapter_model.safetensors")
    b = load_file(tmp_path / "ema" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    # Same seed and batches: only the averaging differs, so every trained tensor does.
    assert all(not torch.equal(a[k], b[k]) for k in a)
    # What was saved is the model handed back, and that model scores what the run reported for it.
    held = get_peft_model_state_dict(averaged.model)
    assert all(torch.equal(held[k].cpu(), b[k]) for k in b)
    again = evaluate_examples(averaged.model, averaged.task, val)
    assert again["accuracy"] == averaged.best["accuracy"]

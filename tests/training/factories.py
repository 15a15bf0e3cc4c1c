"""Helpers shared by the training tests: learnable examples, training settings, specs and
predictions of a fitted model."""

from __future__ import annotations

import random

import numpy as np

from models.spec import load_spec
from schemas.settings import TrainingSettings
from training.tasks import predict_examples
from training.readers import Example

POS = ["great", "wonderful", "fantastic", "best", "happy", "loved", "good"]
NEG = ["terrible", "worst", "hate", "cold", "bland", "never", "bad"]
FILLER = ["the", "movie", "was", "food", "service", "day", "and", "i", "it", "at", "beach", "line"]


def synthetic(n: int, seed: int, start: int = 0) -> list[Example]:
    """Examples a tiny BERT can learn: one sentiment word among filler, alternating labels."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = "positive" if i % 2 else "negative"
        words = rng.sample(FILLER, 4) + [rng.choice(POS if label == "positive" else NEG)]
        rng.shuffle(words)
        out.append(Example(f"msg-{start + i}", " ".join(words), label))
    return out


def settings(base, method: str, **kw) -> TrainingSettings:
    return TrainingSettings(**{
        "base_model": base, "method": method, "max_length": 16, "batch_size": 16, "epochs": 3,
        "learning_rate": 1e-2, "warmup_ratio": 0.0, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
        "target_modules": ("query", "value", "word_embeddings"), "early_stopping_patience": 5,
        "keep": "last", **kw})


def spec_for(base, adapter, kind: str, **changes):
    return load_spec("minilm-lora-sst2").with_overrides(**{
        "base.id": str(base), "device": "cpu", "max_length": 16, "adapter.kind": kind, "adapter.path": adapter,
        "adapter.version": "t", **changes})


def trained_probs(res, cfg, examples) -> np.ndarray:
    return predict_examples(res.model, res.task, examples)

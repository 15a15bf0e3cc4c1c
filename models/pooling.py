"""Masked mean pooling in place of a BERT-style [CLS] pooler.

sentence-transformers bases (all-MiniLM-L6-v2 among them) were trained to mean-pool their token
states; their [CLS] state never was, so a classifier reads the state the base was trained to give.
On SST-2 the difference was within the seed spread (benchmarks/HISTORY.md, Training, runs P-cls and
P-mean); the shipped adapter was trained with mean pooling. The pooler's own dense
layer and activation are kept, so the parameter names, and the adapters that save them, stay the same.

The trainer records the pooling an adapter was trained with in its ``sentistream_training.json``;
loading the adapter applies it. No record means [CLS], as transformers builds the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from models.errors import AdapterError, ModelLoadError

POOLINGS = ("cls", "mean")
TRAINING_META = "sentistream_training.json"


class MeanPooler(nn.Module):
    def __init__(self, dense: nn.Module, activation: nn.Module) -> None:
        super().__init__()
        self.dense, self.activation = dense, activation
        self.mask: torch.Tensor | None = None  # the batch's attention mask, set by a hook on the model

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            pooled = hidden_states.mean(1)
        else:
            m = self.mask[:, : hidden_states.shape[1]].unsqueeze(-1).to(hidden_states.dtype)
            pooled = (hidden_states * m).sum(1) / m.sum(1).clamp(min=1)
        return self.activation(self.dense(pooled))


def use_mean_pooling(model: nn.Module) -> nn.Module:
    """Swap every [CLS] pooler in ``model`` (PEFT's trainable copies included) for a MeanPooler."""
    if pooling_of(model) == "mean":
        return model
    swapped: list[MeanPooler] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__.endswith("Pooler") and hasattr(child, "dense") and hasattr(child, "activation"):
                swapped.append(MeanPooler(child.dense, child.activation))
                setattr(parent, name, swapped[-1])
    if not swapped:
        raise ModelLoadError(f"mean pooling needs a BERT-style pooler; {type(model).__name__} has none")

    def keep_mask(_m, args, kwargs):
        # (input_ids, attention_mask, ...) is the positional order of BERT-style forwards.
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        for p in swapped:
            p.mask = mask

    model.register_forward_pre_hook(keep_mask, with_kwargs=True)
    return model


def pooling_of(model: nn.Module) -> str:
    return "mean" if any(isinstance(m, MeanPooler) for m in model.modules()) else "cls"


def base_pooling(base_dir: Path) -> str:
    """The pooling a sentence-transformers base declares (``modules.json`` → Pooling config);
    [CLS] for any other model."""
    try:
        modules = json.loads((Path(base_dir) / "modules.json").read_text())
        path = next(m["path"] for m in modules if m.get("type", "").endswith(".Pooling"))
        conf = json.loads((Path(base_dir) / path / "config.json").read_text())
    except (OSError, ValueError, StopIteration, KeyError, TypeError):
        return "cls"
    return "mean" if conf.get("pooling_mode_mean_tokens") else "cls"


def adapter_pooling(adapter_dir: Path) -> str:
    meta = Path(adapter_dir) / TRAINING_META
    if not meta.is_file():
        return "cls"
    try:
        pooling = json.loads(meta.read_text()).get("pooling", "cls")
    except ValueError as e:
        raise AdapterError(f"adapter {adapter_dir}: {TRAINING_META} is not JSON ({e})") from None
    if pooling not in POOLINGS:
        raise AdapterError(f"adapter {adapter_dir}: {TRAINING_META} pooling {pooling!r} is not one of {POOLINGS}")
    return pooling


def apply_pooling(model: nn.Module, pooling: str) -> nn.Module:
    return use_mean_pooling(model) if pooling == "mean" else model

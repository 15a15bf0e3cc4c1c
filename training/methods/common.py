"""Loading the base and finding the head, shared by the methods."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from schemas.settings import TrainingSettings
from training.errors import TrainingError

# Always part of the head, whatever modules_to_save says (peft adds these for SEQ_CLS too).
HEAD_NAMES = ("classifier", "score")


def load_base(base_dir: Path, labels: Sequence[str], *, serving_init: bool = False, causal: bool = False,
              **kwargs) -> nn.Module:
    """``serving_init``: seed 0 right before loading, as models/ does, so a head the base lacks is
    initialised exactly as the daemon will initialise it (adapters storing head deltas need that).
    ``causal``: the language model itself, whose head scores the label words."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if causal:
        return AutoModelForCausalLM.from_pretrained(base_dir, trust_remote_code=False, use_safetensors=True,
                                                    **kwargs)
    state = torch.random.get_rng_state()
    if serving_init:
        torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_dir,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
        trust_remote_code=False,
        use_safetensors=True,
        **kwargs,
    )
    if serving_init:
        torch.random.set_rng_state(state)
    return model


def train_device(cfg: TrainingSettings) -> torch.device:
    from models.build import resolve_device
    from models.errors import ModelLoadError

    try:
        return resolve_device(cfg.device)
    except ModelLoadError as e:
        raise TrainingError(f"training.{e}") from None


def matches(module_name: str, names: Sequence[str]) -> bool:
    """peft-style: the full module name or a dotted suffix of it."""
    return any(module_name == n or module_name.endswith("." + n) for n in names)


def head_parameters(model: nn.Module, modules_to_save: Sequence[str]) -> dict[str, nn.Parameter]:
    names = tuple(modules_to_save) + HEAD_NAMES
    heads = [m for m, _ in model.named_modules() if m and matches(m, names)]
    out = {n: p for n, p in model.named_parameters() if any(n.startswith(h + ".") for h in heads)}
    if not out:
        raise TrainingError(f"training.modules_to_save {list(modules_to_save)}: no classification head found")
    return out


def freeze_all_but_head(model: nn.Module, modules_to_save: Sequence[str]) -> dict[str, torch.Tensor]:
    """Everything frozen except the head; returns the head's initial values by parameter name."""
    for p in model.parameters():
        p.requires_grad_(False)
    head = head_parameters(model, modules_to_save)
    for p in head.values():
        p.requires_grad_(True)
    return {n: p.detach().clone() for n, p in head.items()}

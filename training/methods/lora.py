"""LoRA through peft; the head is saved through ``modules_to_save``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from schemas.settings import TrainingSettings
from training.methods.common import load_base

HYPERPARAMETERS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save")


def attach(cfg: TrainingSettings, base: nn.Module, warm_start: Path | None, modules_to_save: Sequence[str],
           *, causal: bool = False):
    """``causal``: the LM head scores the label words, so nothing but the LoRA weights is saved."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if warm_start is not None:
        return PeftModel.from_pretrained(base, warm_start, is_trainable=True)
    targets = cfg.target_modules if isinstance(cfg.target_modules, str) else list(cfg.target_modules)
    if cfg.frozen_layers:
        from training.frozen_layers import targets_above

        targets = targets_above(base, cfg.target_modules, cfg.frozen_layers)
    lora = LoraConfig(
        task_type="CAUSAL_LM" if causal else "SEQ_CLS",
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        modules_to_save=None if causal else list(modules_to_save),
    )
    return get_peft_model(base, lora)


def build(cfg: TrainingSettings, base_dir: Path, labels: Sequence[str], warm_start: Path | None = None, *,
          causal: bool = False):
    return attach(cfg, load_base(base_dir, labels, causal=causal), warm_start, cfg.modules_to_save, causal=causal)


def save(model, cfg: TrainingSettings, out_dir: Path, base_dir: Path) -> dict:
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "README.md").unlink(missing_ok=True)  # PEFT's empty model-card template
    return {}

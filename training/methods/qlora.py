"""QLoRA: LoRA on a 4-bit (nf4, double-quant) base, loaded with the same bitsandbytes settings
models/ serves it with (classification head kept in full precision). The adapter is an ordinary
PEFT adapter. bitsandbytes is imported lazily."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from schemas.settings import TrainingSettings
from training.errors import TrainingError
from training.methods import lora
from training.methods.common import load_base, train_device

HYPERPARAMETERS = lora.HYPERPARAMETERS + ("qlora_compute_dtype",)


def quantization(cfg: TrainingSettings):
    from models.spec import QuantizationSpec

    return QuantizationSpec(mode="nf4", double_quant=True, compute_dtype=cfg.qlora_compute_dtype)


def build(cfg: TrainingSettings, base_dir: Path, labels: Sequence[str], warm_start: Path | None = None, *,
          causal: bool = False):
    from models import quant
    from models.errors import MissingBackendError

    dev = train_device(cfg)
    try:
        kwargs = quant.load_kwargs(quantization(cfg), dev)
    except MissingBackendError as e:
        raise TrainingError(f"training.method 'qlora': {e}") from None
    from peft import prepare_model_for_kbit_training

    base = load_base(base_dir, labels, causal=causal, **kwargs)
    for m in base.modules():
        # bitsandbytes repacks 4-bit weights for AVX512-BF16 inference at the first eval-mode
        # forward and never unpacks them; a training forward after a validation pass then fails.
        if hasattr(m, "support_avx512bf16_for_cpu"):
            m.support_avx512bf16_for_cpu = False
    # Checkpointing trades compute for GPU memory; CPU runs have RAM to spare and no time to spare.
    base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=dev.type == "cuda")
    # Only the full-precision head can be saved whole; a 4-bit pooler gets LoRA like any linear.
    keep = [m for m in cfg.modules_to_save if m in quant.HEAD_MODULES]
    return lora.attach(cfg, base, warm_start, keep, causal=causal)


def optimizer(params: list, cfg: TrainingSettings) -> torch.optim.Optimizer:
    """Paged 8-bit AdamW on CUDA (optimizer state in 8 bits, paged out under memory pressure)."""
    if params[0].device.type == "cuda":
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW8bit(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


def save(model, cfg: TrainingSettings, out_dir: Path, base_dir: Path) -> dict:
    lora.save(model, cfg, out_dir, base_dir)
    q = quantization(cfg)
    return {"quantized_base": {"bits": 4, "quant_type": q.mode, "double_quant": q.double_quant,
                               "compute_dtype": q.compute_dtype}}

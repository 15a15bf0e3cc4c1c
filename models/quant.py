"""Quantization settings -> ``from_pretrained`` keyword arguments. bitsandbytes is imported lazily."""

from __future__ import annotations

from typing import Any

import structlog
import torch

from models.errors import MissingBackendError
from models.spec import QuantizationSpec

log = structlog.get_logger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# Heads stay in full precision: they are tiny, and 4-bit kernels need dims that are multiples of 64.
HEAD_MODULES = ("score", "classifier", "lm_head")


def compute_dtype(q: QuantizationSpec) -> torch.dtype:
    if q.mode == "none":
        return torch.float32
    if q.mode == "bf16":
        return torch.bfloat16
    return DTYPES[q.compute_dtype]


def bnb_config(q: QuantizationSpec, skip_modules: tuple[str, ...] = HEAD_MODULES):
    """A ``transformers.BitsAndBytesConfig`` for nf4 / fp4 / int8, or None for none / bf16."""
    if q.mode in ("none", "bf16"):
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise MissingBackendError(
            f"quantization.mode {q.mode!r} needs bitsandbytes: pip install 'sentistream[quant]'"
        ) from None
    from transformers import BitsAndBytesConfig

    if q.mode == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(skip_modules))
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.mode,
        bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_compute_dtype=DTYPES[q.compute_dtype],
        bnb_4bit_quant_storage=torch.uint8,
        llm_int8_skip_modules=list(skip_modules),
    )


def on_device(q: QuantizationSpec, device: torch.device) -> QuantizationSpec:
    """A quantized model's bf16 compute where the device has bf16 in hardware; float32 elsewhere,
    where emulated bf16 makes every matmul many times slower (measured on an AVX2-only CPU: a QLoRA
    step 20x slower) and float32 loses nothing."""
    from models.runtime import native_bf16

    if is_quantized(q) and q.compute_dtype == "bfloat16" and not native_bf16(device):
        log.info("compute_dtype_fallback", setting="quantization.compute_dtype", device=str(device),
                 used="float32", hint="this device has no native bf16")
        return q.model_copy(update={"compute_dtype": "float32"})
    return q


def load_kwargs(q: QuantizationSpec, device: torch.device) -> dict[str, Any]:
    """dtype, quantization_config and device_map for ``from_pretrained``."""
    q = on_device(q, device)
    kw: dict[str, Any] = {"dtype": compute_dtype(q)}
    cfg = bnb_config(q)
    if cfg is not None:
        kw["quantization_config"] = cfg
        # bitsandbytes quantizes while loading onto the target device.
        kw["device_map"] = {"": device.index if device.type == "cuda" and device.index is not None else device.type}
    return kw


def is_quantized(q: QuantizationSpec) -> bool:
    return q.mode in ("nf4", "fp4", "int8")

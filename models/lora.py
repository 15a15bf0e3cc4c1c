"""LoRA / QLoRA adapters through peft (``adapter_config.json`` + ``adapter_model.safetensors``).

The classification head must travel with a sequence-classification adapter (peft's
``modules_to_save``, set automatically for ``task_type=SEQ_CLS``): an adapter saved without it
would silently get a freshly initialised head on reload — the known peft pitfall. That is refused
here unless the base checkpoint itself carries a trained head.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open
from torch import nn

from models.checks import refuse_pickles
from models.errors import AdapterError, LabelMismatchError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
HEAD_NAMES = ("score", "classifier")


def check_lora_dir(path: Path) -> dict:
    """Files present, no pickle weights; returns adapter_config.json."""
    if not path.is_dir():
        raise AdapterError(f"adapter.path {path}: LoRA adapter directory does not exist")
    if not (path / CONFIG_FILE).is_file():
        raise AdapterError(f"LoRA adapter {path}: {CONFIG_FILE} is missing")
    refuse_pickles(path, "LoRA adapter")
    if not (path / WEIGHTS_FILE).is_file():
        raise AdapterError(f"LoRA adapter {path}: {WEIGHTS_FILE} is missing")
    config = json.loads((path / CONFIG_FILE).read_text())
    if config.get("peft_type") != "LORA":
        raise AdapterError(f"LoRA adapter {path}: peft_type is {config.get('peft_type')!r}, expected 'LORA'")
    return config


def head_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Classification-head weights stored in the adapter, by key."""
    with safe_open(path / WEIGHTS_FILE, framework="pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()
                if k.endswith(".weight") and any(f".{h}." in f".{k}" and "lora_" not in k for h in HEAD_NAMES)}


def check_head(path: Path, num_labels: int, base_has_head: bool) -> None:
    heads = head_shapes(path)
    if not heads:
        if base_has_head:
            return
        raise AdapterError(
            f"LoRA adapter {path} has no classification head weights, so the head would be random after "
            "loading; save it with task_type='SEQ_CLS' (or modules_to_save=['score'] / ['classifier'])"
        )
    for key, shape in heads.items():
        if shape[0] != num_labels:
            raise LabelMismatchError(
                f"LoRA adapter {path}: head {key} has {shape[0]} outputs but the spec has {num_labels} labels"
            )


def attach_lora(model: nn.Module, path: Path, adapter_name: str = "default") -> nn.Module:
    """Wrap ``model`` in a PeftModel (or add one more named adapter to an existing PeftModel)."""
    from peft import PeftModel

    try:
        if isinstance(model, PeftModel):
            model.load_adapter(str(path), adapter_name=adapter_name, is_trainable=False)
            return model
        return PeftModel.from_pretrained(model, str(path), adapter_name=adapter_name, is_trainable=False)
    except (ValueError, RuntimeError, KeyError) as e:
        raise AdapterError(f"LoRA adapter {path} does not fit the base model (made for another base?): {e}") from None

"""Training methods, one module each: ``build`` a model whose trainable parameters are the
method's, and ``save`` the result in the on-disk format the daemon serves.

- ``lora``: PEFT LoRA, head through ``modules_to_save``,
- ``qlora``: the same on a 4-bit (nf4, double-quant) base; paged 8-bit AdamW on CUDA,
- ``sparta``: random sparse deltas on chosen weights plus the head, peft-sparta's format,
- ``head``: only the classification head (and pooler), peft-sparta's format with head deltas only.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

# Their adapters store deltas against the untouched base, so training cannot start from one.
NO_WARM_START = ("sparta", "head")


def method(name: str) -> ModuleType:
    return import_module(f"training.methods.{name}")


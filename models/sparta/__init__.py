"""SpaRTA adapters in peft-sparta's on-disk format (``config.json`` with ``sparta_pretrained_model``,
``sparse_deltas.safetensors`` with ``indices.<param>`` / ``deltas.<param>``, ``head_init.safetensors``).

- :func:`save_sparta` / :func:`save_from_sparta_model` write an adapter (training uses these),
- :func:`load_sparta` reads and validates one,
- :func:`merge_sparta` adds the deltas into full-precision (fp32 / bf16) weights,
- :func:`apply_sparta_quantized` serves them on a bitsandbytes base without touching the 4-bit weights.
"""

from models.sparta.apply import apply_sparta_quantized, merge_sparta
from models.sparta.format import SpartaAdapter, load_sparta, save_from_sparta_model, save_sparta

__all__ = [
    "SpartaAdapter",
    "apply_sparta_quantized",
    "load_sparta",
    "merge_sparta",
    "save_from_sparta_model",
    "save_sparta",
]

"""Read and write peft-sparta 0.0.3's adapter directory, byte-compatible with its loader.

Layout (see ``peft_sparta.sparta.SpaRTA.save(merged=False)`` and ``peft_sparta.loader``):
- ``config.json``: the model's transformers config plus ``sparta_pretrained_model`` (the base id);
  for classification also ``problem_type`` and ``id2label``,
- ``sparse_deltas.safetensors``: for each parameter name ``indices.<name>`` (int32, (n, ndim)) and
  ``deltas.<name>`` (float32, (n,)); names are the full model's ``named_parameters`` names,
- ``head_init.safetensors`` (tensor ``head``): the classification head's initial weight, which the
  head delta is added to. peft-sparta's trainer writes ``head_init.pt``; pickle is refused here.
"""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from models.checks import refuse_pickles
from models.errors import AdapterError

CONFIG_FILE = "config.json"
DELTAS_FILE = "sparse_deltas.safetensors"
HEAD_INIT_FILE = "head_init.safetensors"
HEAD_PARAM = "score.weight"


@dataclass
class SpartaAdapter:
    path: Path
    config: dict
    indices: dict[str, torch.Tensor]
    deltas: dict[str, torch.Tensor]
    head_init: torch.Tensor | None = None
    nonzero: list[str] = field(default_factory=list)  # parameter names with at least one delta

    @property
    def base_model(self) -> str | None:
        return self.config.get("sparta_pretrained_model")

    @property
    def num_labels(self) -> int | None:
        return None if self.head_init is None else int(self.head_init.shape[0])


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def save_sparta(
    out_dir: str | Path,
    *,
    model_config,
    base_model: str,
    indices: dict[str, torch.Tensor],
    deltas: dict[str, torch.Tensor],
    head_init: torch.Tensor | None = None,
) -> Path:
    """Write an adapter. ``model_config`` is the transformers config of the adapted model (its
    ``id2label`` / ``problem_type`` are what peft-sparta's classifier loader reads)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if set(indices) != set(deltas):
        raise ValueError("indices and deltas must have the same parameter names")
    tensors = {}
    for name in indices:
        idx, d = indices[name], deltas[name]
        if idx.dim() != 2 or d.dim() != 1 or idx.shape[0] != d.shape[0]:
            raise ValueError(f"{name}: indices must be (n, ndim) and deltas (n,), got {tuple(idx.shape)}, {tuple(d.shape)}")
        tensors[f"indices.{name}"] = idx.to(torch.int32).contiguous().cpu()
        tensors[f"deltas.{name}"] = d.detach().to(torch.float32).contiguous().cpu()
    save_file(tensors, out / DELTAS_FILE)
    cfg = model_config.to_dict()
    cfg["sparta_pretrained_model"] = base_model
    if head_init is not None:
        cfg["problem_type"] = cfg.get("problem_type") or "single_label_classification"
        save_file({"head": head_init.detach().contiguous().cpu()}, out / HEAD_INIT_FILE)
    cfg["sentistream_adapter"] = {"kind": "sparta", "peft_sparta": _version("peft-sparta"),
                                  "sentistream": _version("sentistream")}
    (out / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True, default=str) + "\n")
    return out


def save_from_sparta_model(sparta, out_dir: str | Path, *, base_model: str, head_init: torch.Tensor | None) -> Path:
    """Save a trained ``peft_sparta.SpaRTA`` wrapper (its ``indices`` / ``deltas``) in the same format."""
    indices = {k: v for k, v in sparta.indices.items()}
    deltas = {k: v.detach() for k, v in sparta.deltas.items()}
    return save_sparta(out_dir, model_config=sparta.model.config, base_model=base_model,
                       indices=indices, deltas=deltas, head_init=head_init)


def load_sparta(path: str | Path) -> SpartaAdapter:
    """Read and validate an adapter directory; every problem is an :class:`AdapterError`."""
    path = Path(path)
    if not path.is_dir():
        raise AdapterError(f"adapter.path {path}: SpaRTA adapter directory does not exist")
    refuse_pickles(path, "SpaRTA adapter")
    for name in (CONFIG_FILE, DELTAS_FILE):
        if not (path / name).is_file():
            raise AdapterError(f"SpaRTA adapter {path}: {name} is missing")
    config = json.loads((path / CONFIG_FILE).read_text())
    if "sparta_pretrained_model" not in config:
        raise AdapterError(f"SpaRTA adapter {path}: config.json has no 'sparta_pretrained_model' (not a SpaRTA adapter)")
    try:
        raw = load_file(path / DELTAS_FILE, device="cpu")
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise AdapterError(f"SpaRTA adapter {path}: {DELTAS_FILE} is unreadable ({e})") from None
    indices, deltas = {}, {}
    for key, value in raw.items():
        kind, _, name = key.partition(".")
        if kind == "indices":
            indices[name] = value
        elif kind == "deltas":
            deltas[name] = value
        else:
            raise AdapterError(f"SpaRTA adapter {path}: unexpected tensor {key!r} in {DELTAS_FILE}")
    if set(indices) != set(deltas):
        raise AdapterError(f"SpaRTA adapter {path}: indices and deltas name different parameters")
    nonzero = []
    for name, idx in indices.items():
        if idx.dim() != 2 or deltas[name].shape != (idx.shape[0],):
            raise AdapterError(f"SpaRTA adapter {path}: {name} has indices {tuple(idx.shape)} and deltas "
                               f"{tuple(deltas[name].shape)}; expected (n, ndim) and (n,)")
        if idx.shape[0]:
            nonzero.append(name)
    head_init = None
    if (path / HEAD_INIT_FILE).is_file():
        head_init = load_file(path / HEAD_INIT_FILE, device="cpu").get("head")
        if head_init is None:
            raise AdapterError(f"SpaRTA adapter {path}: {HEAD_INIT_FILE} has no tensor named 'head'")
    elif HEAD_PARAM in indices and indices[HEAD_PARAM].shape[0]:
        raise AdapterError(f"SpaRTA adapter {path}: it trains a classification head but {HEAD_INIT_FILE} is missing")
    return SpartaAdapter(path, config, indices, deltas, head_init, nonzero)

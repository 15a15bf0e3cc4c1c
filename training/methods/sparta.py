"""SpaRTA: a random subset of the entries of chosen weights is trainable, as a delta vector per
weight added in place by a parametrization (the base weights never change), plus the head.
Saved in peft-sparta's format through :func:`models.sparta.save_sparta`.

``sparta_sparsity`` is per target weight (0.99: 1% of each chosen matrix trains), not
peft-sparta's fraction of the whole model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from schemas.settings import TrainingSettings
from training.errors import TrainingError
from training.methods.common import freeze_all_but_head, load_base, matches

HYPERPARAMETERS = ("sparta_sparsity", "sparta_target_modules", "modules_to_save")


class SparseDelta(nn.Module):
    """weight -> weight + delta scattered at ``indices`` ((n, ndim), long)."""

    def __init__(self, indices: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("indices", indices)
        self.delta = nn.Parameter(torch.zeros(indices.shape[0]))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w.index_put(tuple(self.indices.unbind(1)), self.delta.to(w.dtype), accumulate=True)


def sample(shape: torch.Size, sparsity: float, gen: torch.Generator) -> torch.Tensor:
    """Exactly round((1 - sparsity) * numel) distinct entries (at least one), sorted, as (n, ndim)."""
    numel = shape.numel()
    n = max(1, round((1 - sparsity) * numel))
    flat = torch.randperm(numel, generator=gen)[:n].sort().values
    return torch.stack(torch.unravel_index(flat, shape), 1)


def add_deltas(model: nn.Module, cfg: TrainingSettings, head: dict) -> None:
    gen = torch.Generator().manual_seed(cfg.seed)
    targets = [(name, m) for name, m in model.named_modules()
               if matches(name, cfg.sparta_target_modules) and isinstance(getattr(m, "weight", None), nn.Parameter)
               and f"{name}.weight" not in head]
    if not targets:
        raise TrainingError(f"training.sparta_target_modules {list(cfg.sparta_target_modules)} match no "
                            "module with a weight in this base model")
    for name, m in targets:
        parametrize.register_parametrization(m, "weight", SparseDelta(sample(m.weight.shape, cfg.sparta_sparsity, gen)))


def build(cfg: TrainingSettings, base_dir: Path, labels: Sequence[str], warm_start: None = None):
    """``warm_start`` is never given (see training.methods.NO_WARM_START)."""
    model = load_base(base_dir, labels, serving_init=True)
    model.sentistream_head_init = freeze_all_but_head(model, cfg.modules_to_save)
    add_deltas(model, cfg, model.sentistream_head_init)
    return model


def save(model: nn.Module, cfg: TrainingSettings, out_dir: Path, base_dir: Path) -> dict:
    """Body deltas as trained; head deltas (all entries) against the head as the daemon loads it,
    and ``score.weight``'s initial value in head_init.safetensors as peft-sparta expects."""
    from models.sparta import save_sparta
    from models.sparta.format import HEAD_PARAM

    # Saved from the CPU: the model may have trained on CUDA, the head's initial values stay on the CPU.
    indices, deltas = {}, {}
    for name, m in model.named_modules():
        if parametrize.is_parametrized(m, "weight"):
            p = m.parametrizations.weight[0]
            indices[f"{name}.weight"], deltas[f"{name}.weight"] = p.indices.cpu(), p.delta.detach().cpu()
    params = dict(model.named_parameters())
    for name, w0 in model.sentistream_head_init.items():
        w = params[name].detach().cpu()
        indices[name] = torch.ones(w.shape).nonzero()
        deltas[name] = (w.float() - w0.float()).flatten()
    head_init = model.sentistream_head_init.get(HEAD_PARAM)
    save_sparta(out_dir, model_config=model.config, base_model=str(base_dir), indices=indices, deltas=deltas,
                head_init=head_init)
    return {"trainable_entries": sum(int(v.shape[0]) for v in indices.values())}

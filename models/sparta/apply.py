"""Put SpaRTA deltas into a loaded model: merged into full-precision weights, or as a sparse
side path next to bitsandbytes layers (whose packed 4-/8-bit weights cannot take a sparse add)."""

from __future__ import annotations

import torch
from torch import nn

from models.errors import AdapterError, LabelMismatchError
from models.sparta.format import HEAD_PARAM, SpartaAdapter


def _params(model: nn.Module) -> dict[str, nn.Parameter]:
    return dict(model.named_parameters(remove_duplicate=False))


def head_weight(adapter: SpartaAdapter, param: nn.Parameter) -> torch.Tensor | None:
    """The adapter's classification head (initial weight + its delta) in ``param``'s dtype."""
    if adapter.head_init is None:
        return None
    w0 = adapter.head_init.to(param.device).float()
    if tuple(w0.shape) != tuple(param.shape):
        raise LabelMismatchError(
            f"SpaRTA adapter {adapter.path}: its head is {tuple(w0.shape)} (labels x hidden) but the model's "
            f"{HEAD_PARAM} is {tuple(param.shape)}; the spec's labels or base model do not match the adapter"
        )
    d = adapter.deltas[HEAD_PARAM].to(param.device).float()
    idx = adapter.indices[HEAD_PARAM].to(param.device).long().unbind(1)
    w = w0.clone()
    w[idx] += d
    return w.to(param.dtype)


def _head(model: nn.Module, adapter: SpartaAdapter, params: dict[str, nn.Parameter]) -> None:
    w = head_weight(adapter, params[HEAD_PARAM]) if HEAD_PARAM in params else None
    if w is not None:
        with torch.no_grad():
            params[HEAD_PARAM].copy_(w)


def _check_fits(name: str, idx: torch.Tensor, shape: tuple[int, ...], adapter: SpartaAdapter) -> None:
    if idx.shape[1] != len(shape) or (idx.shape[0] and bool((idx.amax(0) >= torch.tensor(shape)).any())):
        raise AdapterError(
            f"SpaRTA adapter {adapter.path}: indices of {name} do not fit its shape {shape}; "
            "the adapter was made for another base model"
        )


def _lookup(params: dict[str, nn.Parameter], name: str, adapter: SpartaAdapter) -> nn.Parameter:
    if name not in params:
        raise AdapterError(
            f"SpaRTA adapter {adapter.path}: parameter {name!r} is not in the model; "
            "the adapter was made for another architecture or head"
        )
    return params[name]


@torch.no_grad()
def merge_sparta(model: nn.Module, adapter: SpartaAdapter) -> nn.Module:
    """w[idx] += delta in float32, cast back to the weight's dtype (fp32 exact, bf16 rounded once)."""
    params = _params(model)
    for name in adapter.nonzero:
        if name == HEAD_PARAM:
            continue
        param = _lookup(params, name, adapter)
        idx = adapter.indices[name]
        _check_fits(name, idx, tuple(param.shape), adapter)
        idx = idx.to(param.device).long().unbind(1)
        d = adapter.deltas[name].to(param.device).float()
        param[idx] = (param[idx].float() + d).to(param.dtype)
    _head(model, adapter, params)
    return model


class SparseDelta(nn.Module):
    """y += x @ S^T for a sparse (out, in) delta S, computed in float32 beside a quantized linear."""

    def __init__(self, indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> None:
        super().__init__()
        coo = torch.sparse_coo_tensor(indices.long().T, values.float(), shape, check_invariants=True).coalesce()
        self.register_buffer("delta", coo, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).float()
        out = torch.sparse.mm(self.delta, flat.T).T
        return out.reshape(*x.shape[:-1], -1)


def _is_bnb_linear(module: nn.Module) -> bool:
    return type(module).__module__.startswith("bitsandbytes")


@torch.no_grad()
def apply_sparta_quantized(model: nn.Module, adapter: SpartaAdapter) -> nn.Module:
    """Deltas of bitsandbytes linears go to a :class:`SparseDelta` forward hook (the 4-bit weights
    stay as loaded, so the delta is not lost to 4-bit rounding); all other deltas are merged."""
    modules = dict(model.named_modules())
    params = _params(model)
    for name in adapter.nonzero:
        if name == HEAD_PARAM:
            continue
        module_name, _, pname = name.rpartition(".")
        module = modules.get(module_name)
        if module is not None and pname == "weight" and _is_bnb_linear(module):
            shape = (module.out_features, module.in_features)
            idx = adapter.indices[name]
            _check_fits(name, idx, shape, adapter)
            side = SparseDelta(idx, adapter.deltas[name], shape).to(next(module.parameters()).device)
            module.add_module("sparta_delta", side)
            module.register_forward_hook(_add_side_output)
            continue
        param = _lookup(params, name, adapter)
        idx = adapter.indices[name]
        _check_fits(name, idx, tuple(param.shape), adapter)
        idx = idx.to(param.device).long().unbind(1)
        param[idx] = (param[idx].float() + adapter.deltas[name].to(param.device).float()).to(param.dtype)
    _head(model, adapter, params)
    return model


def _add_side_output(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return output + module.sparta_delta(args[0]).to(output.dtype)

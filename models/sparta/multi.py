"""Several SpaRTA adapters on one resident full-precision base model.

A SpaRTA adapter changes a fraction of a percent of the weights, so switching adapters is two
scatters per changed parameter: put back the base values the active adapter replaced, write the
next adapter's merged values. Values are computed once at load exactly as :func:`merge_sparta`
computes them, so an adapter served here scores exactly as the same adapter merged alone.
A mixed batch runs one group of rows per adapter; ``default`` is active between calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from models.sparta.apply import _check_fits, _lookup, _params, head_weight
from models.sparta.format import HEAD_PARAM, SpartaAdapter


@dataclass
class _Patch:
    param: nn.Parameter
    index: tuple[torch.Tensor, ...]
    base: torch.Tensor  # the base model's values at ``index``
    merged: torch.Tensor  # the adapter's values there


class SpartaSet:
    def __init__(self, model: nn.Module, adapters: dict[str, SpartaAdapter]) -> None:
        params = _params(model)
        self._patches = {name: self._prepare(params, sp) for name, sp in adapters.items()}
        self.active: str | None = None
        self.activate("default")

    @staticmethod
    @torch.no_grad()
    def _prepare(params: dict[str, nn.Parameter], adapter: SpartaAdapter) -> list[_Patch]:
        patches = []
        for name in adapter.nonzero:
            if name == HEAD_PARAM:
                continue
            param = _lookup(params, name, adapter)
            _check_fits(name, adapter.indices[name], tuple(param.shape), adapter)
            idx = adapter.indices[name].to(param.device).long().unbind(1)
            base = param[idx].clone()
            merged = (base.float() + adapter.deltas[name].to(param.device).float()).to(param.dtype)
            patches.append(_Patch(param, idx, base, merged))
        # As merge_sparta: the head is replaced whole (head_init + delta) wherever the model has one.
        head = params.get(HEAD_PARAM)
        merged = None if head is None else head_weight(adapter, head)
        if merged is not None:
            patches.append(_Patch(head, (), head.detach().clone(), merged))
        return patches

    @torch.no_grad()
    def activate(self, name: str) -> None:
        if name == self.active:
            return
        if self.active is not None:
            for p in reversed(self._patches[self.active]):
                p.param[p.index] = p.base
        for p in self._patches[name]:
            p.param[p.index] = p.merged
        self.active = name

    @contextmanager
    def using(self, name: str) -> Iterator[None]:
        self.activate(name)
        try:
            yield
        finally:
            self.activate("default")

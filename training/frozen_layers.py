"""Frozen bottom layers run once per example, not once per epoch.

With ``training.frozen_layers = n`` the adapter only touches the layers above ``n``, so what the
bottom ``n`` layers compute for an example never changes during training. Their outputs are
computed once (eval mode, no gradients) and fed to layer ``n`` in every epoch; training then costs
only the top layers' forward and backward passes. The trade: no dropout in the frozen layers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from training.errors import TrainingError
from training.methods.common import matches


def layer_stack(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """The transformer's block list (the longest ``ModuleList``), with its parent and attribute."""
    best = None
    for parent in model.modules():
        for attr, child in parent.named_children():
            if isinstance(child, nn.ModuleList) and (best is None or len(child) > len(best[2])):
                best = (parent, attr, child)
    if best is None:
        raise TrainingError("training.frozen_layers: the model has no layer list to split")
    return best


def check_frozen_layers(n: int, total: int) -> None:
    if not 0 < n < total:
        raise TrainingError(f"training.frozen_layers = {n}: the model has {total} layers; "
                            f"set it between 1 and {total - 1}, or 0 to train every layer")


def targets_above(model: nn.Module, targets: Sequence[str] | str, n: int) -> list[str]:
    """Full names of the adapter's target modules in layers ``n`` and up (``targets`` as peft takes
    them: ``"all-linear"`` or names / dotted suffixes)."""
    from transformers.pytorch_utils import Conv1D

    _, _, layers = layer_stack(model)
    check_frozen_layers(n, len(layers))
    prefix = next(name for name, m in model.named_modules() if m is layers)
    names = [f"{prefix}.{i}.{name}" for i in range(n, len(layers)) for name, m in layers[i].named_modules()
             if isinstance(m, (nn.Linear, Conv1D)) and (targets == "all-linear" or matches(name, targets))]
    if not names:
        raise TrainingError(f"training.target_modules {targets!r}: nothing to adapt above layer {n}")
    return names


class _Captured(Exception):
    """Stops the cache pass once layer ``n``'s input is in hand."""


class FrozenLayersCache:
    """The frozen bottom ``n`` layers' output for every example, and a context in which the model
    starts at layer ``n`` from it."""

    def __init__(self, model: nn.Module, n: int):
        self.parent, self.attr, self.layers = layer_stack(model)
        check_frozen_layers(n, len(self.layers))
        trained = [name for name, p in self.layers[:n].named_parameters() if p.requires_grad]
        if trained:
            raise TrainingError(f"training.frozen_layers = {n}: parameters in those layers would train (e.g. "
                                f"{trained[0]}, from the method or the warm-start adapter); set it to 0")
        self.model, self.n = model, n
        self.states: list[torch.Tensor] = []

    @torch.inference_mode()
    def fill(self, batches: Iterable[tuple[Sequence[int], dict[str, torch.Tensor], Sequence[int]]], count: int,
             dtype: torch.dtype, autocast: bool) -> None:
        """``batches``: (example indices, model inputs, unpadded lengths) covering examples
        ``0..count-1``. Stores each example's layer-``n`` input without its padding."""
        captured: list[torch.Tensor] = []

        def grab(_m, args):
            captured.append(args[0])
            raise _Captured

        hook = self.layers[self.n].register_forward_pre_hook(grab)
        was_training = self.model.training
        self.model.eval()
        states: list[torch.Tensor | None] = [None] * count
        try:
            for idx, inputs, lengths in batches:
                captured.clear()
                with torch.autocast(inputs["input_ids"].device.type, dtype=torch.bfloat16, enabled=autocast):
                    try:
                        self.model(**inputs)
                    except _Captured:
                        pass
                for row, (i, length) in enumerate(zip(idx, lengths)):
                    states[i] = captured[0][row, :length].to(dtype).clone()
        finally:
            hook.remove()
            self.model.train(was_training)
        self.states = states

    def padded(self, idx: Sequence[int], width: int) -> torch.Tensor:
        first = self.states[idx[0]]
        out = torch.zeros((len(idx), width, first.shape[-1]), dtype=first.dtype)
        for r, i in enumerate(idx):
            s = self.states[i]
            out[r, : len(s)] = s
        return out

    @contextmanager
    def feeding(self, hidden: torch.Tensor):
        """Run the model from layer ``n`` on ``hidden`` (the embeddings still run, their output is
        replaced); the bottom layers are left out of the stack meanwhile."""
        def swap(_m, args, kwargs):
            return (hidden.to(args[0].dtype), *args[1:]), kwargs

        hook = self.layers[self.n].register_forward_pre_hook(swap, with_kwargs=True)
        try:
            with self._only(self.layers[self.n :]):
                yield
        finally:
            hook.remove()

    @contextmanager
    def _only(self, layers: nn.ModuleList):
        setattr(self.parent, self.attr, layers)
        try:
            yield
        finally:
            setattr(self.parent, self.attr, self.layers)

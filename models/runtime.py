"""Run-time helpers shared by the classifiers: optional torch.compile, bf16 autocast where the
hardware has it, and building the next sub-batch's inputs in a background thread while the
current one runs."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import structlog
import torch
from torch import nn

from models.spec import CompileMode

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def compile_forward(module: nn.Module, mode: CompileMode, device: torch.device, *,
                    backend: str = "inductor") -> nn.Module:
    """``torch.compile`` with dynamic shapes (token-budget batches vary in rows and width).

    ``reduce-overhead`` is inductor's CUDA-graph mode: one graph is recorded per distinct batch
    shape. On a device other than CUDA it falls back to ``default``."""
    if mode == "none":
        return module
    if mode == "reduce-overhead" and device.type != "cuda":
        log.warning("compile_mode_fallback", setting="compile", mode=mode, device=str(device),
                    hint="CUDA graphs need a CUDA device; compiling with mode 'default'")
        mode = "default"
    # ``mode`` is inductor's option; other backends (eager, aot_eager) ignore it.
    return torch.compile(module, mode=mode, dynamic=True, backend=backend)


def native_bf16(device: torch.device) -> bool:
    """bf16 matmuls in hardware: CUDA GPUs that support it, CPUs with AVX512-BF16 or AMX. Elsewhere
    bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def use_bf16(autocast: str, device: torch.device) -> bool:
    """Resolve ``runtime.autocast`` (none / bf16 / auto) for ``device``."""
    if autocast == "auto":
        return native_bf16(device)
    if autocast == "bf16" and not native_bf16(device):
        log.warning("bf16_emulated", setting="model.precision", device=str(device),
                    hint="this device has no native bf16; fp32 is likely faster")
    return autocast == "bf16"


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """On CUDA through pinned host memory, so the copy runs asynchronously."""
    if device.type == "cuda":
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.to(device) for k, v in batch.items()}


class Prefetcher:
    """One worker thread, owned by a classifier: ``map(fn, items)`` yields ``fn(item)`` in order
    and has ``fn(next item)`` running in the background while the caller works on the current
    one. The forward pass releases the GIL in its kernels, so the two overlap even on CPU."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sentistream-prefetch")

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        queue: deque[Future] = deque()
        try:
            for item in items:
                queue.append(self._pool.submit(fn, item))
                if len(queue) > 1:
                    yield queue.popleft().result()
            while queue:
                yield queue.popleft().result()
        finally:
            # A caller that stops early (an error in its forward pass) must not leave the worker
            # using the tokenizer when its next call starts.
            for f in queue:
                if not f.cancel():
                    f.exception()

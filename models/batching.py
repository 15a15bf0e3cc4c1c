"""Dynamic batching by token budget: texts sorted by length so each batch pads little."""

from __future__ import annotations


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def plan_batches(lengths: list[int], token_budget: int, multiple: int = 8) -> list[list[int]]:
    """Split indices into batches whose padded size (rows x longest, rounded up to ``multiple``)
    stays within ``token_budget``; a single over-long text still gets a batch of its own."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0  # padded length of the current batch: its first (longest) text
    for i in order:
        if current and (len(current) + 1) * width <= token_budget:
            current.append(i)
            continue
        if current:
            batches.append(current)
        current, width = [i], round_up(max(lengths[i], 1), multiple)
    if current:
        batches.append(current)
    return batches

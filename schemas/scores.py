"""What a prediction's scores say about how sure the model was; the daemon stores it, the console
queues by it, so both compute it here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def margin(scores: Mapping[str, float] | Sequence[float]) -> float:
    """Top-1 minus top-2 probability; 1.0 for a single class (nothing to decide)."""
    values = sorted(scores.values() if isinstance(scores, Mapping) else scores, reverse=True)
    return float(values[0] - values[1]) if len(values) > 1 else 1.0

"""The seam between the daemon and any model: a batch of texts in, class probabilities out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class BatchResult:
    probs: np.ndarray  # (n, num_labels) float32, rows sum to 1
    adapter_versions: tuple[str | None, ...]  # per row: which adapter produced it


@runtime_checkable
class Classifier(Protocol):
    labels: tuple[str, ...]
    model_version: str

    def classify(self, texts: Sequence[str]) -> BatchResult:
        """Classify a batch; raises on device errors (the caller splits and retries)."""
        ...


@runtime_checkable
class RoutedClassifier(Classifier, Protocol):
    """Several adapters on one base: each message's attributes (source, lang, topic) pick one."""

    routed: bool

    def classify(self, texts: Sequence[str], attrs: Sequence[dict] | None = None) -> BatchResult: ...

"""Drift: each source's recent label shares and mean confidence against what the active adapter was
trained and measured on. The trainer records its training label counts (``metrics.train_label_counts``)
and its gold-set accuracy (``metrics.gold.accuracy``); a calibrated model's mean confidence is about its
accuracy, so a source whose mean confidence falls well below it reads messages unlike the gold set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from console.queries import SourceStats


@dataclass(frozen=True)
class Baseline:
    """The active adapter's training distribution; empty shares: the adapter recorded none."""
    version: str | None
    shares: dict[str, float]
    accuracy: float | None


@dataclass(frozen=True)
class SourceDrift:
    source: str
    n: int
    shares: dict[str, float]
    # Recent share minus training share, per label (labels of either side).
    share_diff: dict[str, float]
    mean_confidence: float
    confidence_drop: float | None  # gold accuracy minus mean confidence; None without a baseline
    share_warning: bool
    confidence_warning: bool

    @property
    def warning(self) -> bool:
        return self.share_warning or self.confidence_warning


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in sorted(counts.items())} if total else {}


def baseline(adapter: Mapping | None) -> Baseline:
    if adapter is None:
        return Baseline(None, {}, None)
    metrics = adapter.get("metrics") or {}
    accuracy = (metrics.get("gold") or {}).get("accuracy")
    return Baseline(adapter["version"], shares(metrics.get("train_label_counts") or {}), accuracy)


def source_drift(stats: SourceStats, base: Baseline, share_bound: float, confidence_bound: float) -> SourceDrift:
    live = shares(stats.labels)
    diff = ({k: live.get(k, 0.0) - base.shares.get(k, 0.0) for k in sorted(set(live) | set(base.shares))}
            if base.shares else {})
    drop = base.accuracy - stats.mean_confidence if base.accuracy is not None else None
    return SourceDrift(
        source=stats.source, n=sum(stats.labels.values()), shares=live, share_diff=diff,
        mean_confidence=stats.mean_confidence, confidence_drop=drop,
        share_warning=any(abs(d) > share_bound for d in diff.values()),
        confidence_warning=drop is not None and drop > confidence_bound,
    )


def drift(stats: Sequence[SourceStats], base: Baseline, share_bound: float,
          confidence_bound: float) -> list[SourceDrift]:
    return [source_drift(s, base, share_bound, confidence_bound) for s in stats]

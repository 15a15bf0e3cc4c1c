"""What one refit (``train --once``) comes to, typed; ``to_json`` is the summary the CLI prints
and the trainer loop logs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, ClassVar

from training.gate import Decision

if TYPE_CHECKING:
    from training.trainer import FitResult


@dataclass(frozen=True)
class Skipped:
    """A refit that trained nothing; its fields say why."""
    action: ClassVar[str] = "skipped"

    def to_json(self) -> dict:
        return {"action": self.action, **asdict(self)}


@dataclass(frozen=True)
class TooFewLabels(Skipped):
    """Fewer new labels than ``training.min_new_labels`` since the last refit."""
    new_labels: int
    min_new_labels: int


@dataclass(frozen=True)
class NoGoldSet(Skipped):
    """No label to measure a candidate on; ``labels`` usable labels in all."""
    why: str
    labels: int


@dataclass(frozen=True)
class Counts:
    train: int
    val: int
    gold: int
    gold_slice_ignored: int  # gold-slice messages labelled only by untrusted labelers
    new_labels_checked: int  # labels since the last refit, checked against the active adapter


@dataclass(frozen=True)
class Scores:
    """What the gate weighs: the candidate's and the active adapter's metrics on the same gold set,
    and the share of the new labels the active adapter contradicts (None when not checked)."""
    candidate: dict
    active: dict | None = None
    new_label_error: float | None = None


@dataclass(frozen=True)
class Refit:
    """A candidate trained, measured, registered and promoted or rejected."""
    version: str
    metric: str  # training.primary_metric
    scores: Scores
    decision: Decision
    counts: Counts
    watermark: int  # the highest labels.id the refit read
    train_label_counts: dict[str, int] = field(default_factory=dict)  # examples per label trained on

    @property
    def action(self) -> str:
        return self.decision.action

    def to_json(self) -> dict:
        m, s, c = self.metric, self.scores, self.counts
        return {"action": self.action, "version": self.version, "reasons": self.decision.reasons,
                f"gold_{m}": s.candidate[m], f"active_gold_{m}": s.active[m] if s.active else None,
                "gold": c.gold, "train": c.train, "val": c.val, "gold_slice_ignored": c.gold_slice_ignored,
                "new_label_error": s.new_label_error, "watermark": self.watermark}

    def registry_metrics(self, fitted: FitResult) -> dict:
        """The registry row's ``metrics``: these scores with the fit's validation record."""
        return {"gold": self.scores.candidate, "val": fitted.best, "active_gold": self.scores.active,
                "history": fitted.history, "counts": asdict(self.counts),
                "new_label_error": self.scores.new_label_error, "fit_seconds": fitted.seconds,
                "train_label_counts": self.train_label_counts}


Outcome = Skipped | Refit

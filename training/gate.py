"""The promotion rule, kept pure so it is easy to test and to explain in a rejection."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.errors import TrainingError


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def action(self) -> str:
        return "promoted" if self.promote else "rejected"


def decide(candidate: dict, active: dict | None, *, metric: str = "macro_f1", margin: float = 0.0,
           recall_tolerance: float = 0.02, new_label_error: float | None = None,
           label_noise_tolerance: float = 1.0) -> Decision:
    """Promote only if ``metric`` beats the active adapter by more than ``margin`` on the gold set,
    no class's recall drops by more than ``recall_tolerance``, and the new labels look as clean as
    the gold set: ``new_label_error`` (the share of the labels since the last refit that the active
    adapter contradicts) may exceed the active adapter's gold-set error by ``label_noise_tolerance``
    at most. ``candidate`` and ``active`` are metrics from :func:`training.metrics.compute_metrics`,
    measured on the same gold set."""
    if metric not in candidate:
        raise TrainingError(f"primary metric {metric!r} is not among the computed metrics {sorted(candidate)}")
    if active is None:
        return Decision(True, ["no active adapter"])
    beats, reason = _beats(candidate, active, metric, margin)
    drops = _recall_drops(candidate, active, recall_tolerance)
    noisy = _noisy_labels(active, new_label_error, label_noise_tolerance)
    return Decision(beats and not drops and not noisy, [reason, *drops, *noisy])


def _beats(candidate: dict, active: dict, metric: str, margin: float) -> tuple[bool, str]:
    c, a = candidate[metric], active[metric]
    if c > a + margin:
        return True, f"{metric} {c:.4f} > active {a:.4f} + margin {margin:g}"
    return False, f"{metric} {c:.4f} does not beat active {a:.4f} + margin {margin:g}"


def _recall_drops(candidate: dict, active: dict, tolerance: float) -> list[str]:
    """One reason per class whose recall drops by more than ``tolerance``."""
    out = []
    for name, pc in candidate["per_class"].items():
        pa = active["per_class"].get(name)
        if pa is None:
            continue
        drop = pa["recall"] - pc["recall"]
        if drop > tolerance:
            out.append(f"recall of {name!r} drops {drop:.4f} ({pa['recall']:.4f} -> {pc['recall']:.4f}), "
                       f"tolerance {tolerance:g}")
    return out


def _noisy_labels(active: dict, new_label_error: float | None, tolerance: float) -> list[str]:
    """The reason to reject the new labels as noisy, if there is one."""
    if new_label_error is None:
        return []
    gold_error = 1.0 - active["accuracy"]
    if new_label_error > gold_error + tolerance:
        return [f"the active adapter contradicts {new_label_error:.1%} of the new labels against "
                f"{gold_error:.1%} of the gold set (tolerance {tolerance:g}): noisy labels? "
                "If they are right (e.g. a new kind of message), raise training.label_noise_tolerance"]
    return []

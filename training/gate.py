"""The promotion rule, kept pure so it is easy to test and to explain in a rejection."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)


def decide(candidate: dict, active: dict | None, *, metric: str = "macro_f1", margin: float = 0.0,
           recall_tolerance: float = 0.02) -> Decision:
    """Promote only if ``metric`` beats the active adapter by more than ``margin`` on the gold set
    and no class's recall drops by more than ``recall_tolerance``. Both dicts are gold-set metrics
    from :func:`training.metrics.compute_metrics`, measured on the same gold set."""
    if metric not in candidate:
        raise KeyError(f"primary metric {metric!r} is not among the computed metrics {sorted(candidate)}")
    if active is None:
        return Decision(True, ["no active adapter"])
    reasons, ok = [], True
    c, a = candidate[metric], active[metric]
    if c > a + margin:
        reasons.append(f"{metric} {c:.4f} > active {a:.4f} + margin {margin:g}")
    else:
        ok = False
        reasons.append(f"{metric} {c:.4f} does not beat active {a:.4f} + margin {margin:g}")
    for name, pc in candidate["per_class"].items():
        pa = active["per_class"].get(name)
        if pa is None:
            continue
        drop = pa["recall"] - pc["recall"]
        if drop > recall_tolerance:
            ok = False
            reasons.append(f"recall of {name!r} drops {drop:.4f} ({pa['recall']:.4f} -> {pc['recall']:.4f}), "
                           f"tolerance {recall_tolerance:g}")
    return Decision(ok, reasons)

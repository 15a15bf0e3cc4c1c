"""A refit's typed outcome turns into the summary `train --once` prints and the registry row's metrics."""

from __future__ import annotations

from pathlib import Path

from training.gate import Decision
from training.metrics import compute_metrics
from training.outcome import Counts, NoGoldSet, Refit, Scores, TooFewLabels
from training.trainer import FitResult

LABELS = ("negative", "positive")
GOLD = compute_metrics([0, 0, 1, 1], [0, 0, 1, 1], LABELS)
ACTIVE = compute_metrics([0, 0, 1, 1], [0, 1, 1, 1], LABELS)


def refit(scores: Scores, decision: Decision, metric: str = "macro_f1") -> Refit:
    return Refit(version="default-2", metric=metric, scores=scores, decision=decision,
                 counts=Counts(train=10, val=3, gold=4, gold_slice_ignored=1, new_labels_checked=5), watermark=42,
                 train_label_counts={"negative": 6, "positive": 4})


def test_a_refit_prints_its_primary_metric_under_computed_keys_in_the_order_it_always_had():
    out = refit(Scores(GOLD, ACTIVE, 0.25), Decision(False, ["macro_f1 1.0000 does not beat"])).to_json()
    assert out == {"action": "rejected", "version": "default-2", "reasons": ["macro_f1 1.0000 does not beat"],
                   "gold_macro_f1": 1.0, "active_gold_macro_f1": ACTIVE["macro_f1"], "gold": 4, "train": 10, "val": 3,
                   "gold_slice_ignored": 1, "new_label_error": 0.25, "watermark": 42}
    assert list(out) == ["action", "version", "reasons", "gold_macro_f1", "active_gold_macro_f1", "gold", "train",
                         "val", "gold_slice_ignored", "new_label_error", "watermark"]
    first = refit(Scores(GOLD), Decision(True, ["no active adapter"]), metric="accuracy")
    assert first.action == "promoted"
    assert {k: v for k, v in first.to_json().items() if k.endswith("_accuracy")} == {
        "gold_accuracy": 1.0, "active_gold_accuracy": None}


def test_skipped_refits_print_why():
    assert TooFewLabels(3, 200).to_json() == {"action": "skipped", "new_labels": 3, "min_new_labels": 200}
    assert NoGoldSet("gold set is empty; import more labels", 7).to_json() == {
        "action": "skipped", "why": "gold set is empty; import more labels", "labels": 7}
    assert TooFewLabels(3, 200).action == NoGoldSet("", 0).action == "skipped"


def test_the_registry_row_keeps_the_scores_with_the_fit_record():
    fitted = FitResult(adapter_dir=Path("a"), best={"accuracy": 0.9}, history=[{"step": 5}], seconds=12.5)
    metrics = refit(Scores(GOLD, ACTIVE, 0.25), Decision(True, [])).registry_metrics(fitted)
    assert metrics == {"gold": GOLD, "val": {"accuracy": 0.9}, "active_gold": ACTIVE, "history": [{"step": 5}],
                       "counts": {"train": 10, "val": 3, "gold": 4, "gold_slice_ignored": 1, "new_labels_checked": 5},
                       "new_label_error": 0.25, "fit_seconds": 12.5,
                       "train_label_counts": {"negative": 6, "positive": 4}}

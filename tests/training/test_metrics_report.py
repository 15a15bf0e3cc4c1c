"""Metrics come from scikit-learn; the report writes JSON, markdown and PNG plots."""

from __future__ import annotations

import json

import pytest

from training.metrics import compute_metrics
from training.report import write_report

LABELS = ("negative", "neutral", "positive")


def test_metrics_on_a_known_confusion_matrix():
    # true: 4 neg, 4 neu, 2 pos
    y_true = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 1, 2, 2, 2, 0]
    m = compute_metrics(y_true, y_pred, LABELS)
    assert m["confusion_matrix"] == [[3, 1, 0], [0, 2, 2], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 2 / 4 + 1 / 2) / 3)
    neg = m["per_class"]["negative"]
    assert (neg["precision"], neg["recall"], neg["support"]) == (pytest.approx(0.75), pytest.approx(0.75), 4)
    assert neg["accuracy"] == pytest.approx(0.8)  # one-vs-rest: 8 of 10 right about "is negative"
    f1s = [2 * 0.75 * 0.75 / 1.5, 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5), 2 * (1 / 3) * 0.5 / (1 / 3 + 0.5)]
    assert m["macro_f1"] == pytest.approx(sum(f1s) / 3)
    assert m["weighted_f1"] == pytest.approx((4 * f1s[0] + 4 * f1s[1] + 2 * f1s[2]) / 10)
    assert -1 <= m["mcc"] <= 1 and m["mcc"] > 0


def test_missing_class_gives_zero_not_an_error():
    m = compute_metrics([0, 0, 1], [0, 0, 1], LABELS)
    assert m["per_class"]["positive"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 1.0, "support": 0}


def test_report_files(tmp_path):
    m = compute_metrics([0, 1, 2, 2], [0, 1, 2, 1], LABELS)
    history = [{"step": 10, "epoch": 0.5, "train_loss": 0.9, "val": {"accuracy": 0.5, "macro_f1": 0.4}},
               {"step": 20, "epoch": 1.0, "train_loss": 0.5, "val": {"accuracy": 0.75, "macro_f1": 0.7}}]
    out = write_report(tmp_path / "r", "run x", m, history, extra={"adapter": "v1"})
    assert json.loads((out / "metrics.json").read_text())["metrics"]["accuracy"] == 0.75
    md = (out / "report.md").read_text()
    assert "| macro_f1 | " in md and "| positive | 1.0000 | 0.5000 |" in md and "- adapter: v1" in md
    for png in ("confusion_matrix.png", "curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

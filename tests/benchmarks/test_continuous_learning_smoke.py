"""Smoke test of benchmarks/continuous_learning.py on a tiny model: two rounds of crowd labels through
the labels topic while the daemon process streams; the invariants the benchmark checks hold. (The
flipped-round rejection needs a real base model: a random tiny one is near chance either way.)"""

from __future__ import annotations

import pytest

from benchmarks import continuous_learning as cl

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_two_rounds_with_the_daemon_streaming(tiny_bert_dir, data_dir):
    args = cl.parse(["--rounds", "2", "--round-size", "150", "--gold-size", "40", "--flip-round", "2",
                     "--stream-rate", "25", "--precision", "fp32", "--base-model", str(tiny_bert_dir)])
    out = cl.run(args)
    checks, results = out["checks"], out["results"]
    assert checks["every produced message written exactly once (rows, output records)"]
    assert checks["predictions carry the versions promoted, in order, none rejected"]
    assert checks["daemon served the active version after every round"]
    assert checks["gold set fixed (same n; each 'before' = previous 'after')"]
    assert results[0]["action"] == "promoted" and out["promoted"][0] == results[0]["version"]
    assert [r["gold"] for r in results] == [40, 40]
    # Round 2 brings crowd labels on uncurated gold-slice messages: ignored, not trained on.
    assert results[1]["gold_slice_ignored"] > 0
    assert out["order"][-1] == out["promoted"][-1]

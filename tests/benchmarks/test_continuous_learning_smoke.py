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
    assert results[0].action == "promoted" and out["promoted"][0] == results[0].version
    assert [r.gold for r in results] == [40, 40]
    # Round 2 brings crowd labels on uncurated gold-slice messages: ignored, not trained on.
    assert results[1].gold_slice_ignored > 0
    assert out["order"][-1] == out["promoted"][-1]


def test_plan_flips_and_curates_as_asked(data_dir):
    args = cl.parse(["--rounds", "2", "--round-size", "500", "--gold-size", "30", "--flip-round", "2",
                     "--flip-mode", "positive"])
    gold, rounds = cl.plan(args, 0.1)
    truth = {e.message_id: e.label for e in cl.sst2("train.tsv", min_words=6)}
    assert len(gold) == 30 and all(e.labeled_by is None and cl.is_gold(e.message_id, 0.1) for e in gold)
    assert all(e.label == truth[e.message_id] for e in gold)
    (clean, n0), (noisy, n1) = rounds
    assert n0 == 0 and all(r["label"] == truth[r["message_id"]] for r in clean)
    wrong = [r for r in noisy if r["label"] != truth[r["message_id"]]]
    assert n1 == len(wrong) == 150
    assert all(r["label"] == "negative" for r in wrong)
    assert {r["labeled_by"] for r in clean + noisy} == {"crowd"}

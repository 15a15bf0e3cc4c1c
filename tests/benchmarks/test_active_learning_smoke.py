"""Smoke test of benchmarks/active_learning.py on a tiny random model and a tiny pool: the rounds add
the labels asked for, the pool leaves out phrase fragments, the queue follows the console's margin
rule and picks other labels than random, and the report files are written. (Whether the queue beats
random needs the real base: a tiny random model is near chance either way; that lives in
benchmarks/RESULTS.md.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks import active_learning as al
from tests.cli.runner import clean_env

pytestmark = pytest.mark.slow

# A tiny pool and small rounds so a run takes seconds; 60 labels give the trainer's 5 % validation
# slice a few examples from the first round on.
TINY = ["--pool", "300", "--start", "60", "--step", "60", "--max-labels", "180", "--seeds", "1"]
COUNTS = [60, 120, 180]


def test_rounds_follow_the_margin_rule_and_differ_from_random(tiny_bert_dir, data_dir, tmp_path):
    out = al.run(al.parse([*TINY, "--base-model", str(tiny_bert_dir), "--data-dir", str(data_dir),
                           "--out", str(tmp_path)]))
    rounds = out["rounds"]
    for strategy in al.STRATEGIES:
        own = [r for r in rounds if r.strategy == strategy]
        assert [r.labels for r in own] == COUNTS
        picked = [p.message_id for r in own for p in r.picks]
        # 60 new labels a round, none picked twice (round 0's random 60 are shared, without picks).
        assert [len(r.picks) for r in own] == [0, 60, 60]
        assert len(set(picked)) == len(picked) == 120
        assert all(0.0 <= r.accuracy <= 1.0 for r in own)

    # The pool stands for a message stream: at the default --min-words no picked item is a phrase fragment.
    words = {e.message_id: al.words(e) for e in al.sst2(data_dir / "sst2" / "train.tsv")}
    assert min(words[p.message_id] for r in rounds for p in r.picks) >= 5

    queue = [r for r in rounds if r.strategy == "queue" and r.picks]
    random_ = [r for r in rounds if r.strategy == "random" and r.picks]
    assert {p.message_id for p in queue[0].picks} != {p.message_id for p in random_[0].picks}
    for r in queue:
        margin_picks = [p for p in r.picks if p.reason == "margin"]
        assert {p.reason for p in r.picks} <= {"margin", "random"}
        assert len(margin_picks) > len(r.picks) // 2  # the random share is one pick in ten
        # Every pick is one of the round's candidates, with its margin (the rule's probabilities are
        # tests/console/test_selection.py's).
        assert all(p.margin == r.margins[p.message_id] for p in r.picks)

    for name in ("results.json", "curve.png", "report.md"):
        assert (tmp_path / name).stat().st_size > 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert sorted(results["mean"]["queue"]) == sorted(str(n) for n in COUNTS)
    assert results["target"]["met"] == (results["target"]["queue_labels_to_reach_it"] is not None
                                        and results["target"]["queue_labels_to_reach_it"] <= al.TARGET_LABELS)
    assert "target (queue reaches random's 180-label accuracy" in (tmp_path / "report.md").read_text()


def test_the_script_runs_as_a_command(tiny_bert_dir, data_dir, tmp_path):
    # One round after round 0 is enough to show the command end to end; the rounds are checked above.
    proc = subprocess.run([sys.executable, "-m", "benchmarks.active_learning", *TINY, "--max-labels", "120",
                           "--base-model", str(tiny_bert_dir), "--data-dir", str(data_dir), "--out", str(tmp_path)],
                          env=clean_env(OMP_NUM_THREADS="1"), cwd=al.c.REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SST-2 dev accuracy by labels, queue against random" in proc.stdout
    assert "target (queue reaches random's" in proc.stdout
    assert json.loads((tmp_path / "results.json").read_text())["seeds"] == [1]


def test_fixed_steps_in_two_processes(tiny_bert_dir, data_dir, tmp_path):
    # Non-default on purpose: the recipe and the process pool the RESULTS.md run 3 used, two seeds
    # so each worker takes one; every fit trains at least --min-steps steps.
    proc = subprocess.run([sys.executable, "-m", "benchmarks.active_learning", *TINY[:-2], "--seeds", "1,2",
                           "--max-labels", "120", "--recipe", "fixed-steps", "--min-steps", "8", "--jobs", "2",
                           "--base-model", str(tiny_bert_dir), "--data-dir", str(data_dir), "--out", str(tmp_path)],
                          env=clean_env(OMP_NUM_THREADS="1"), cwd=al.c.REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["seeds"] == [1, 2]
    assert "recipe fixed-steps" in results["training"] and "at least 8 steps" in results["training"]
    assert sorted((r["seed"], r["strategy"], r["labels"]) for r in results["rounds"]) == sorted(
        (seed, s, n) for seed in (1, 2) for s in al.STRATEGIES for n in (60, 120))


def test_fixed_steps_trains_at_least_min_steps(tiny_bert_dir, data_dir, tmp_path):
    # Non-default on purpose: 60 labels less the validation slice are 2 batches of 32 an epoch, so
    # the default 3 epochs are 6 steps; --min-steps 10 must stretch the fit to 5 epochs.
    args = al.parse(["--recipe", "fixed-steps", "--min-steps", "10", "--base-model", str(tiny_bert_dir)])
    labelled = al.sst2(data_dir / "sst2" / "train.tsv")[:60]
    res = al.refit(al.settings(args), tiny_bert_dir, labelled, tmp_path / "a", al.min_steps(args))
    assert 10 <= res.steps <= 12 and res.stopped == "epochs"


def test_missing_data_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.active_learning", "--data-dir", str(tmp_path)],
                          env=clean_env(), cwd=al.c.REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"no SST-2 at {tmp_path / 'sst2'}: set SENTISTREAM_DATA_DIR or --data-dir"
    assert "Traceback" not in proc.stderr

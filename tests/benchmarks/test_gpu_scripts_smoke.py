"""The GPU benchmarks run where no GPU is lent, on a tiny model (--smoke): a GPU session runs them
as they are, so they must not break unseen. Without --smoke and without CUDA they exit 2 in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from benchmarks.common import REPO

pytestmark = [pytest.mark.slow]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def table_rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| model") and not line.startswith("| precision")]


def test_gpu_models_smoke():
    p = run("benchmarks.gpu_models", "--smoke", "--messages", "16", "--repeats", "1", "--precisions", "bf16")
    assert p.returncode == 0, p.stderr[-3000:]
    rows = table_rows(p.stdout)
    assert {(r[0], r[1], r[2]) for r in rows} == {("bf16", head, t) for head in
                                                 ("sequence_classification", "causal_lm_verbalizer")
                                                 for t in ("32", "128")}, p.stdout


@pytest.mark.kafka
def test_gpu_daemon_smoke():
    p = run("benchmarks.gpu_daemon", "--smoke", "--models", "gemma-2b", "--messages", "128", "--reps", "1")
    assert p.returncode == 0, p.stderr[-3000:]
    (row,) = table_rows(p.stdout)
    assert row[0] == "gemma-2b" and float(row[3]) > 0, p.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
@pytest.mark.parametrize("script", ["benchmarks.gpu_models", "benchmarks.gpu_daemon"])
def test_without_a_gpu_they_say_so(script):
    p = run(script)
    assert p.returncode == 2
    assert p.stderr.strip().endswith("nothing was measured.") and "Traceback" not in p.stderr

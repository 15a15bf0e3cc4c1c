"""Smoke test of benchmarks/pipeline.py: every measure runs end to end on a few hundred messages and
lands in the printed table. No timing assertions: speed lives in benchmarks/RESULTS.md."""

from __future__ import annotations

import pytest

from benchmarks import pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MEASURES = [
    ("1", "raw classifier, in-process (msg/s)"),
    ("1", "daemon end-to-end (msg/s)"),
    ("1", "pipeline efficiency (daemon ÷ raw)"),
    ("1", "complete: rows / output records / offsets committed"),
    ("2", "naive loop (msg/s)"),
    ("2", "daemon ÷ naive loop"),
    ("3", "kafka-python consume-only (msg/s)"),
    ("3", "daemon, constant classifier (msg/s)"),
    ("3", "pipeline capacity (daemon ÷ consume-only)"),
    ("3", "Postgres sink alone, batches of 32 (rows/s)"),
    ("3", "plain COPY, batches of 32 (rows/s)"),
    ("3", "plain COPY, one transaction (rows/s)"),
    ("4", "end-to-end latency p50 (ms)"),
    ("4", "end-to-end latency p99 (ms)"),
    ("5", "daemon peak RSS during (1) and (4) (MiB)"),
]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_quick_run_prints_every_measure():
    sizes = pipeline.Sizes(reps=1, eff_messages=96, naive_messages=16, capacity_messages=1000, db_rows=300,
                           latency_seconds=2.0, scale_tokens=(16, 64, 256), scale_batches=(1, 8, 32, 128),
                           scale_min_messages={16: 8, 64: 8, 256: 8})
    # The scale law (6) times rates from at least two writes; on a few messages the checkpoint's batch
    # merging can make one write of them, so it is left to the benchmark run itself.
    out = pipeline.run(["1", "2", "3", "4", "5"], sizes)
    rows = [_cells(line) for line in out.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    main = {(r[0], r[1]): r for r in rows if len(r) == 6}
    for key in MEASURES:
        assert key in main, f"missing row {key}\n{out}"
        assert main[key][2], f"empty value in {key}"
    complete = main[("1", "complete: rows / output records / offsets committed")]
    assert complete[4] == "yes", complete

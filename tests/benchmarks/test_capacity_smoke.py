"""Smoke test of benchmarks/capacity.py: raw, sentistream, the Quix Streams peer and the four floor
loops (benchmarks/floor.py) each run on a few hundred messages, the daemon at its default settings,
on the real broker (tansu); the sentistream run is complete and the latency run lands in the table.
No timing assertions: speed lives in benchmarks/RESULTS.md."""

from __future__ import annotations

import pytest

from benchmarks import capacity

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_quick_run_measures_all_three_and_the_floor(capsys):
    if not capacity.PEER_PYTHON.exists():
        pytest.fail(f"{capacity.PEER_PYTHON} is missing: run 'make peers' (make test does)")
    # 600 messages, 1 round, 2 s of latency: sizes for a smoke test, not a measurement.
    assert capacity.main(["--brokers", "tansu", "--kinds", "constant", "--reps", "1", "--messages", "600",
                          "--latency-seconds", "2", "--floor"]) == 0
    out = capsys.readouterr().out
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| tansu")]
    main, *floors, latency = rows
    assert [f[2] for f in floors] == list(capacity.FLOORS), out
    assert all(float(f[3]) > 0 and float(f[4]) > 0 for f in floors), out
    assert main[:2] == ["tansu", "constant"] and all(main[2:8]), out
    assert float(main[2]) > 0 and float(main[3]) > 0, out
    assert latency[3] != "0" and all(latency[4:6]), out
    assert "600 rows, 600 output records (600 ids), offsets at end: True → complete" in out

"""Smoke test of benchmarks/console_queries.py, run as a subprocess as its users run it: every
console query lands in the printed table with a plan, and the RESULTS section is written. No timing
assertions: the figures on 10 million rows live in benchmarks/RESULTS.md."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import text

from benchmarks.console_queries import query_functions
from tests.cli.runner import clean_env
from tests.conftest import REPO

pytestmark = [pytest.mark.slow]

# A few thousand rows instead of 10 million: the same fill, plans and report in seconds.
ROWS = "3000"


def bench(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.console_queries", *args], cwd=REPO,
                          env=clean_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def table_rows(out: str) -> dict[str, list[str]]:
    """The results table's rows by query name (the first table printed)."""
    lines = out.split("\n\n")[0].splitlines()[2:]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    return {r[0]: r for r in cells}


def bench_databases(pg_admin) -> set[str]:
    with pg_admin.connect() as conn:
        return set(conn.execute(text("select datname from pg_database "
                                     "where datname like 'sentistream_console_bench_%'")).scalars())


def test_every_console_query_gets_a_plan_and_a_results_section(tmp_path, pg_admin):
    before = bench_databases(pg_admin)
    # A file of its own, so the test leaves benchmarks/RESULTS.md alone.
    results = tmp_path / "RESULTS.md"
    proc = bench("--rows", ROWS, "--results", str(results))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = table_rows(proc.stdout)
    called = {name.split(" #")[0] for name in rows}
    expected = {fn.__name__ for fn in query_functions("console.queries")}
    assert expected and expected <= called, f"missing: {expected - called}\n{proc.stdout}"
    for name, r in rows.items():
        plan, median_ms = r[2], r[5]
        assert plan, f"{name}: no plan"
        assert float(median_ms) >= 0, f"{name}: {median_ms}"
    section = results.read_text()
    assert "## Console: page queries on 3,000 predictions (EXPLAIN ANALYZE)" in section
    assert all(f"| {name} " in section for name in rows)
    assert bench_databases(pg_admin) == before  # its database is dropped


def test_a_kept_fill_is_measured_later(pg_admin):
    before = bench_databases(pg_admin)
    filled = bench("--rows", ROWS, "--fill-only")
    assert filled.returncode == 0, filled.stderr[-3000:]
    (name,) = bench_databases(pg_admin) - before
    try:
        measured = bench("--database", name, "--no-results")  # the first test covers the section
        assert measured.returncode == 0, measured.stderr[-3000:]
        assert {fn.__name__ for fn in query_functions("console.queries")} <= \
            {q.split(" #")[0] for q in table_rows(measured.stdout)}
    finally:
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_database_it_did_not_fill_is_one_line_and_exit_2():
    proc = bench("--database", "postgres")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "console_queries: that database was not filled by this benchmark: pass one that '--fill-only' kept"]

"""A database that is not ready: an unmigrated Postgres database, a fresh SQLite file, a server that
does not answer, a schema dropped while the daemon runs. Each ends in one line that says what to fix
and exit 2, with no traceback and no password or message text; the start-up checks come before any
model loads."""

from __future__ import annotations

import json
import signal
import time

import pytest
from sqlalchemy import create_engine, text

from tests.cli.runner import clean_env, sentistream
from tests.daemon.harness import (
    committed_and_end, count, default_env, log_of, make_topics, produce, start, tweet, wait_for,
)
from tests.reliability.pg import free_port

COMMANDS = [("run",), ("trainer",), ("labels", "import", "labels.csv"), ("train", "--once"),
            ("adapters", "list"), ("adapters", "promote", "default-1"), ("adapters", "rollback")]
# The model alone takes longer than this to load; the checks come first, in about two seconds.
FAST_S = 15
PASSWORD = "pw-8f3e1c"


def one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == b""
    # One line and nothing else: in particular no model_loaded (at the default log level, info).
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sentistream: error: "), lines
    return lines[0]


def run_timed(command, url, cwd):
    (cwd / "labels.csv").write_text("text,label\nwhat a lovely day,positive\n")
    t0 = time.monotonic()
    proc = sentistream(*command, env=clean_env(SENTISTREAM_DATABASE__URL=url), cwd=cwd, timeout=120)
    return proc, time.monotonic() - t0


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_unmigrated_postgres_says_run_db_upgrade(command, make_database, tmp_path):
    proc, elapsed = run_timed(command, make_database(migrate=False), tmp_path)
    line = one_error_line(proc)
    assert "has no sentistream schema (revision none, need " in line, line
    assert line.endswith("run 'sentistream db upgrade'"), line
    assert elapsed < FAST_S, elapsed


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_fresh_sqlite_file_says_run_db_upgrade(command, tmp_path):
    proc, elapsed = run_timed(command, f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path)
    line = one_error_line(proc)
    assert f"database at sqlite:///{tmp_path / 'fresh.db'} has no sentistream schema" in line, line
    assert line.endswith("run 'sentistream db upgrade'"), line
    assert elapsed < FAST_S, elapsed


@pytest.mark.parametrize("command", [*COMMANDS, ("db", "upgrade")], ids=" ".join)
def test_unreachable_database_names_the_setting_without_the_password(command, tmp_path):
    url = f"postgresql+psycopg://sentistream:{PASSWORD}@127.0.0.1:{free_port()}/sentistream"  # nothing listens
    proc, elapsed = run_timed(command, url, tmp_path)
    line = one_error_line(proc)
    assert line.startswith("sentistream: error: cannot reach the database at "
                           "postgresql+psycopg://sentistream:***@127.0.0.1:"), line
    assert "SENTISTREAM_DATABASE__URL" in line and "Connection refused" in line, line
    assert PASSWORD not in line
    assert elapsed < FAST_S, elapsed


@pytest.mark.kafka
def test_schema_dropped_while_running_stops_with_one_line_and_commits_nothing_unwritten(
        broker, topic_names, make_database):
    url = make_database()
    topics = make_topics(broker, topic_names, partitions=1)
    secret = "private words 5d1e"  # message text: must appear in no output
    produce(broker, topics["input"], (tweet(i, f"{secret} {i}") for i in range(20)))
    proc = start(default_env(broker, url, topics))
    try:
        assert wait_for(lambda: sum(v or 0 for v in committed_and_end(
            broker, topics["group"], topics["input"])[0].values()) >= 20 or proc.poll() is not None,
            timeout=120), log_of(proc)
        assert count(url, "select count(*) from predictions") == 20
        engine = create_engine(url)
        with engine.begin() as c:
            c.execute(text("drop table predictions cascade"))
        engine.dispose()
        produce(broker, topics["input"], (tweet(i, f"{secret} {i}") for i in range(20, 30)))
        assert proc.wait(60) == 2, log_of(proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    out = log_of(proc, tail=None)
    assert "Traceback" not in out and secret not in out, out
    errors = [line for line in out.splitlines() if line.startswith("sentistream: error: ")]
    assert len(errors) == 1, out
    assert 'refused a batch (UndefinedTable: relation "predictions" does not exist)' in errors[0], errors[0]
    assert "sentistream db upgrade" in errors[0]
    # Every other line is a JSON log event (the default format off a terminal).
    for line in out.splitlines():
        if line not in errors:
            json.loads(line)
    # The refused batch's offsets were not committed: the next run reads it again.
    committed, _ = committed_and_end(broker, topics["group"], topics["input"])
    assert committed == {0: 20}


def test_db_upgrade_to_an_unknown_revision_is_one_line(make_database, tmp_path):
    # Non-default revision on purpose: a typo in the one argument db upgrade takes.
    url = make_database(migrate=False)
    proc = sentistream("db", "upgrade", "nosuch", env=clean_env(SENTISTREAM_DATABASE__URL=url), cwd=tmp_path)
    line = one_error_line(proc)
    assert line.startswith("sentistream: error: db upgrade nosuch: ") and "'nosuch'" in line, line

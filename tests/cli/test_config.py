"""Settings mistakes a new user makes, through the real CLI: each ends in one line that says what to fix
(exit 2, no traceback, no secret), or, for a misspelt variable, a warning while the command goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url


def sentistream(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SENTISTREAM_")}
    env.update(settings)
    proc = subprocess.run([sys.executable, "-m", "schemas.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one line a settings error prints; the command itself (classify loads a model) never started."""
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sentistream: error: "), proc.stderr
    return lines[0].removeprefix("sentistream: error: ")


def test_comma_separated_topics_are_accepted(tmp_path):
    proc = sentistream("db", "upgrade", cwd=tmp_path, SENTISTREAM_KAFKA__INPUT_TOPICS="tweets,reviews",
                       SENTISTREAM_DATABASE__URL=f"sqlite:///{tmp_path / 'db.sqlite'}")  # no server needed
    assert proc.returncode == 0, proc.stderr


def test_broken_yaml_names_file_line_and_column(tmp_path):
    cfg = tmp_path / "sentistream.yaml"
    cfg.write_text("kafka:\n  input_topics: [tweets, reviews\nbatch:\n  max_size: 8\n")
    line = error_line(sentistream("classify", "hello", cwd=tmp_path, SENTISTREAM_CONFIG_FILE=str(cfg)))
    assert line.startswith(f"{cfg}:3:6: invalid YAML: expected ',' or ']'"), line


def test_broken_toml_names_file_line_and_column(tmp_path):
    cfg = tmp_path / "sentistream.toml"
    cfg.write_text("[batch]\nmax_size = 8\nmax_wait_ms = \n")
    line = error_line(sentistream("classify", "hello", cwd=tmp_path, SENTISTREAM_CONFIG_FILE=str(cfg)))
    assert line == f"{cfg}:3:15: invalid TOML: Invalid value"


def test_bad_value_in_the_file_is_reported_by_its_file_key(tmp_path):
    cfg = tmp_path / "sentistream.yaml"
    cfg.write_text("kafka:\n  max_poll_records: 0\n")
    line = error_line(sentistream("classify", "hello", cwd=tmp_path, SENTISTREAM_CONFIG_FILE=str(cfg)))
    assert line == f"invalid setting kafka.max_poll_records in {cfg}: Input should be greater than 0"


def test_bad_value_in_a_variable_is_reported_by_the_variable(tmp_path):
    line = error_line(sentistream("classify", "hello", cwd=tmp_path, SENTISTREAM_KAFKA__MAX_POLL_RECORDS="0"))
    assert line == "invalid setting kafka.max_poll_records (SENTISTREAM_KAFKA__MAX_POLL_RECORDS): " \
                   "Input should be greater than 0"


def test_unknown_key_in_the_file_is_reported_by_its_file_key(tmp_path):
    cfg = tmp_path / "sentistream.yaml"
    cfg.write_text("batch:\n  max_sise: 8\n")
    line = error_line(sentistream("classify", "hello", cwd=tmp_path, SENTISTREAM_CONFIG_FILE=str(cfg)))
    assert line == f"invalid setting batch.max_sise in {cfg}: no such setting; did you mean batch.max_size?"


def test_postgres_url_without_driver_gets_psycopg(tmp_path, make_database):
    url = make_url(make_database(migrate=False))
    plain = url.set(drivername="postgres").render_as_string(hide_password=False)
    proc = sentistream("db", "upgrade", cwd=tmp_path, SENTISTREAM_DATABASE__URL=plain)
    assert proc.returncode == 0, proc.stderr
    assert f"database at {url.render_as_string(hide_password=True)} is at revision head" in proc.stdout


def test_unsupported_database_url_is_named_without_the_password(tmp_path):
    line = error_line(sentistream("classify", "hello", cwd=tmp_path,
                                  SENTISTREAM_DATABASE__URL="mysql://app:hunter2secret@db:3306/sentistream"))
    assert line.startswith("invalid setting database.url (SENTISTREAM_DATABASE__URL): unsupported database "
                           "'mysql'; use postgresql+psycopg://"), line
    assert "hunter2secret" not in line


def test_misspelt_variable_is_named_in_a_warning_and_the_command_goes_on(tmp_path):
    proc = sentistream("db", "upgrade", cwd=tmp_path, SENTISTREAM_DATABASE_URL="postgresql://elsewhere/db",
                       SENTISTREAM_DATABASE__URL=f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert proc.returncode == 0, proc.stderr
    # Default log_format (auto) off a terminal: JSON lines on stderr, the warning among them.
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    warnings = [e for e in events if e["event"] == "unknown_setting_variable"]
    assert [(w["level"], w["detail"]) for w in warnings] == [(
        "warning", "SENTISTREAM_DATABASE_URL is not a setting and is ignored; "
        "did you mean SENTISTREAM_DATABASE__URL?")]

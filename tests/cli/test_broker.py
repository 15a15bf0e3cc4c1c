"""No Kafka broker at the configured address: `run` and `trainer` end in one line naming the setting and
the address, within 15 s and before any model loads."""

from __future__ import annotations

import time

import pytest

from tests.cli.runner import clean_env, sentistream
from daemon.tansu_broker import free_port

# The start-up check waits 8 s for a broker; the rest is the interpreter and the database check.
WITHIN_S = 15


@pytest.mark.parametrize("command", [("run",), ("trainer",)], ids=" ".join)
def test_no_broker_is_one_line_naming_the_setting(command, database_url, tmp_path):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = clean_env(SENTISTREAM_DATABASE__URL=database_url, SENTISTREAM_KAFKA__BOOTSTRAP_SERVERS=address)
    t0 = time.monotonic()
    proc = sentistream(*command, env=env, cwd=tmp_path, timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == b""
    # One line and nothing else: no kafka-python retry lines, no model_loaded (the model never loaded).
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("sentistream: error: no Kafka broker answered at " + address), lines[0]
    assert "SENTISTREAM_KAFKA__BOOTSTRAP_SERVERS" in lines[0] and "ECONNREFUSED" in lines[0]
    assert elapsed < WITHIN_S, elapsed

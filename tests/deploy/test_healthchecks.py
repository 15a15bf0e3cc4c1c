"""The Python healthchecks of the sentistream services, run as compose runs them (the command from the
resolved compose file, the service's environment) against the test Postgres."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.deploy.stack import resolved_config, service_env


@pytest.fixture(scope="module")
def config() -> dict:
    return resolved_config()


def _run_healthcheck(svc: dict, overrides: dict[str, str]) -> subprocess.CompletedProcess:
    test = svc["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"], test
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTISTREAM_")}
    env |= {k: v for k, v in service_env(svc).items() if k.startswith("SENTISTREAM_")} | overrides
    return subprocess.run([sys.executable, *test[2:]], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("service", ["migrate", "trainer", "trainer-cpu"])
def test_healthcheck_passes_with_postgres_reachable(config, service, database_url, tmp_path):
    proc = _run_healthcheck(config["services"][service], {
        "SENTISTREAM_DATABASE__URL": database_url, "SENTISTREAM_TRAINING__ADAPTERS_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("service", ["migrate", "trainer"])
def test_healthcheck_fails_when_postgres_is_unreachable(config, service, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    proc = _run_healthcheck(config["services"][service], {
        "SENTISTREAM_DATABASE__URL": f"postgresql+psycopg://nobody@127.0.0.1:{closed_port}/none",
        "SENTISTREAM_TRAINING__ADAPTERS_DIR": str(tmp_path)})
    assert proc.returncode != 0
    assert "OperationalError" in proc.stderr

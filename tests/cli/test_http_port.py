"""`sentistream run` when its HTTP port (/metrics, /healthz, /readyz) is taken, e.g. by a second
replica started on the same host at the default settings: one line naming the setting, exit 2,
before anything else is checked or loaded."""

from __future__ import annotations

import socket

import pytest

from daemon.errors import DaemonError
from daemon.health import HealthServer
from schemas.settings import ObservabilitySettings
from tests.cli.runner import sentistream

DEFAULT = ObservabilitySettings()


@pytest.fixture
def default_port_taken():
    """Holds the default port as another process would (if something else already holds it, the
    port is taken all the same)."""
    s = socket.socket()
    try:
        s.bind((DEFAULT.http_host, DEFAULT.http_port))
        s.listen()
    except OSError:
        pass
    yield DEFAULT.http_port
    s.close()


def test_run_with_its_port_taken_says_which_setting_to_change(default_port_taken):
    proc = sentistream("run", timeout=60)  # every setting at its default
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 2
    assert len(err) == 1, err
    assert f":{default_port_taken}" in err[0] and "SENTISTREAM_OBSERVABILITY__HTTP_PORT" in err[0], err
    assert "model_loaded" not in proc.stderr.decode()


def test_the_health_server_refuses_a_taken_port_with_the_same_line(default_port_taken):
    with pytest.raises(DaemonError, match="SENTISTREAM_OBSERVABILITY__HTTP_PORT"):
        HealthServer(DEFAULT.http_host, default_port_taken, None, lambda: True, lambda: True)

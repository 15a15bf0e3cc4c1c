"""``sentistream run``: start-up checks, the daemon, and signals at any moment.

Start-up runs in this order, each step failing in one line before the next costs time: the HTTP
port for /metrics, /healthz and /readyz is free, the database answers and is at the current
migration, a Kafka broker answers, the model loads (seconds), the loop runs. Until the loop runs, SIGTERM or SIGINT ends start-up at once (exit 0: nothing was read).
From then on a signal drains in-flight work within ``shutdown_timeout_s`` (exit 0, or 1 with the
unwritten batches' offsets left uncommitted); a watchdog ends the process with 1 if a call that
cannot be interrupted (a database or broker that stopped answering mid-request) outlives that.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import structlog
from sqlalchemy import exc

from daemon.health import check_port
from schemas.broker import check_broker
from schemas.db import check_database, describe_error
from schemas.errors import DatabaseUnavailable
from schemas.settings import Settings

log = structlog.get_logger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT)
# After shutdown_timeout_s the daemon closes its clients (bounded at 2 s each); past this margin
# the watchdog ends the process.
WATCHDOG_MARGIN_S = 5.0
EXIT_INCOMPLETE = 1


class _StopBeforeStart(BaseException):
    """Raised by the signal handler until the loop runs, to abandon a check or the model load.
    A BaseException, like KeyboardInterrupt, so that no library's ``except Exception`` swallows it."""


def _abandon_start(signum: int, frame) -> None:
    for sig in SIGNALS:  # a second signal must not interrupt the clean-up of the first
        signal.signal(sig, signal.SIG_IGN)
    raise _StopBeforeStart(signal.Signals(signum).name)


def run_daemon(settings: Settings) -> int:
    """Check, load, run; returns the exit code. Start-up failures raise SentistreamError (exit 2)."""
    for sig in SIGNALS:
        signal.signal(sig, _abandon_start)
    try:
        check_port(settings.observability.http_host, settings.observability.http_port)
        revision = check_database(settings.database)
        check_broker(settings.kafka)
        log.info("dependencies_reachable", database=settings.database.safe_url, revision=revision,
                 kafka=settings.kafka.bootstrap_servers)
        daemon = _load(settings)
        watchdog = _Watchdog(settings.shutdown_timeout_s + WATCHDOG_MARGIN_S)

        def on_signal(signum: int, frame) -> None:
            daemon.stop()
            watchdog.arm(signal.Signals(signum).name)

        for sig in SIGNALS:
            signal.signal(sig, on_signal)
    except _StopBeforeStart as e:
        log.info("daemon_stopped", exit_code=0, signal=str(e), before_start=True)
        return 0
    return daemon.run()


def _load(settings: Settings):
    """The daemon with its model loaded (seconds); the model packages are imported only now."""
    from daemon.app import Daemon

    try:
        return Daemon(settings)
    except exc.SQLAlchemyError as e:  # the registry is read at start-up when following it
        raise DatabaseUnavailable(f"the database at {settings.database.safe_url} failed during start-up "
                                  f"({describe_error(e)}): check SENTISTREAM_DATABASE__URL") from None


class _Watchdog:
    """Ends the process ``after_s`` after the first signal if the daemon has not returned by then."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self._armed = False

    def arm(self, signal_name: str) -> None:
        if self._armed:
            return
        self._armed = True
        threading.Thread(target=self._expire, args=(time.monotonic() + self.after_s, signal_name),
                         name="shutdown-watchdog", daemon=True).start()

    def _expire(self, at: float, signal_name: str) -> None:
        time.sleep(max(0.0, at - time.monotonic()))
        log.error("shutdown_forced", signal=signal_name, error=(
            f"still stopping {self.after_s:g} s after {signal_name} (a database or broker call did not return): "
            "exiting; unwritten batches' offsets stay uncommitted, so the next run reads them again"))
        sys.stderr.flush()
        os._exit(EXIT_INCOMPLETE)

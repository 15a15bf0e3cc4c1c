"""``sentistream console``: check the database and the users, bind the port, serve with uvicorn."""

from __future__ import annotations

import errno
import signal
import socket

import structlog
import uvicorn
from sqlalchemy.engine import Engine

from console.app import build_app
from console.errors import ConsoleError, NoUsers, PortInUse
from console.users import count_users
from schemas.db import check_database, database_engine
from schemas.settings import Settings

log = structlog.get_logger("console")


def check_users(engine: Engine) -> None:
    with engine.connect() as c:
        if not count_users(c):
            raise NoUsers("no console users: run 'sentistream users add NAME --role admin'")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a taken port is one line, not uvicorn's exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} on {host} is in use: stop the other process or set "
                            "SENTISTREAM_CONSOLE__PORT") from None
        raise ConsoleError(f"cannot listen on {host}:{port} ({e.strerror}): check SENTISTREAM_CONSOLE__HOST") from None
    return sock


def serve(settings: Settings) -> int:
    check_database(settings.database)
    if not settings.database.url.get_secret_value().startswith("postgresql"):
        raise ConsoleError("the console needs PostgreSQL: point SENTISTREAM_DATABASE__URL at it")
    engine = database_engine(settings.database)
    check_users(engine)
    cfg = settings.console
    sock = bind(cfg.host, cfg.port)
    app = build_app(settings, engine)
    # log_config=None: uvicorn's loggers go through sentistream's logging; its access log is off (ours
    # never names a query string).
    config = uvicorn.Config(app, log_config=None, access_log=False, proxy_headers=False, server_header=False)
    log.info("console.listening", url=f"http://{cfg.host}:{cfg.port}/")
    # uvicorn shuts down gracefully on SIGTERM / SIGINT, then re-raises the signal to the handler that was
    # in place before it ran: this one notes it, so a stopped console exits 0, like the daemon.
    stopped_by: list[str] = []
    previous = {sig: signal.signal(sig, lambda signum, _: stopped_by.append(signal.Signals(signum).name))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        engine.dispose()
    log.info("console.stopped", signal=stopped_by[0] if stopped_by else None)
    return 0

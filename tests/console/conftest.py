"""The console against a real, seeded Postgres database: in process (Starlette's TestClient) and as
the real ``sentistream console`` subprocess on a free port (``console_server``, for browser tests)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from console.app import build_app
from daemon.tansu_broker import free_port
from schemas.db import make_engine
from schemas.settings import Settings
from tests.cli.runner import COMMAND, clean_env
from tests.console.factories import CSRF, Seeded, password, seed_console, wait_until_up


@dataclass(frozen=True)
class ConsoleDB:
    url: str
    engine: object
    seeded: Seeded
    reports: Path


@pytest.fixture
def console_db(make_database, tmp_path) -> Iterator[ConsoleDB]:
    url = make_database()
    engine = make_engine(url)
    reports = tmp_path / "reports"
    try:
        yield ConsoleDB(url, engine, seed_console(engine, reports), reports)
    finally:
        engine.dispose()


def settings_for(db: ConsoleDB, **console: object) -> Settings:
    # reports_dir: the seeded plots live under the test's tmp_path, not the default ./reports.
    return Settings(database={"url": db.url}, training={"reports_dir": db.reports}, console=console)


def csrf(client: TestClient, path: str = "/login") -> str:
    found = CSRF.search(client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def login(client: TestClient, user: str, secret: str | None = None) -> httpx.Response:
    token = csrf(client)
    return client.post("/login", data={"username": user, "password": secret or password(user), "csrf_token": token},
                       follow_redirects=False)


@pytest.fixture
def app(console_db):
    return build_app(settings_for(console_db), console_db.engine)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def as_user(app):
    """Factory: a TestClient logged in as the seeded user of that role (``viewer`` ... ``admin``)."""
    clients: list[TestClient] = []

    def make(role: str) -> TestClient:
        c = TestClient(app)
        clients.append(c)
        assert login(c, role).status_code == 303
        return c

    yield make
    for c in clients:
        c.close()


@dataclass(frozen=True)
class ConsoleServer:
    url: str
    db: ConsoleDB
    log: Path  # the server's stderr (its access log)
    proc: subprocess.Popen


@pytest.fixture
def console_server(console_db, tmp_path) -> Iterator[ConsoleServer]:
    """``sentistream console`` at its default settings but the port (a free one) and the test database;
    users ``viewer``, ``labeller``, ``curator``, ``admin`` with password ``<name>-password``."""
    port = free_port()
    log = tmp_path / "console.log"
    env = clean_env(SENTISTREAM_DATABASE__URL=console_db.url, SENTISTREAM_CONSOLE__PORT=str(port),
                    SENTISTREAM_TRAINING__REPORTS_DIR=str(console_db.reports))
    with log.open("wb") as err:
        proc = subprocess.Popen([*COMMAND, "console"], env=env, stdout=err, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc, log)
        yield ConsoleServer(url, console_db, log, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

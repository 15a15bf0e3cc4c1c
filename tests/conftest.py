"""Real services for tests: a throwaway Postgres database per test, a Kafka-protocol broker
(the embedded mock cluster, or a real Kafka when KAFKA_BOOTSTRAP_SERVERS is set), tiny models."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from schemas.db import upgrade

# The admin URL of a server the tests may create databases on.
PG_ADMIN_URL = os.environ.get("SENTISTREAM_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REAL_KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
METADATA_MAX_AGE_MS = 1000
REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("SENTISTREAM_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def pg_admin():
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            c.execute(text("select 1"))
    except Exception as e:
        pytest.fail(f"Postgres at {PG_ADMIN_URL} is not reachable ({e}); run 'make services'")
    yield engine
    engine.dispose()


@pytest.fixture
def make_database(pg_admin) -> Iterator[Callable[..., str]]:
    """Factory: a fresh, migrated database; dropped after the test."""
    created: list[str] = []

    def make(migrate: bool = True) -> str:
        name = f"sentistream_test_{uuid.uuid4().hex[:12]}"
        with pg_admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        if migrate:
            upgrade(url)
        return url

    yield make
    with pg_admin.connect() as c:
        for name in created:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(make_database) -> str:
    return make_database()


@pytest.fixture
def own_postgres():
    """A migrated PostgreSQL server the test may stop and start (tests/reliability/pg.py)."""
    from tests.reliability.pg import OwnPostgres

    pg = OwnPostgres()
    try:
        pg.start()
        upgrade(pg.url)
        yield pg
    finally:
        pg.close()


class Broker:
    """What a test needs of a broker, for the embedded mock cluster and a real Kafka alike."""

    def __init__(self) -> None:
        self.real = REAL_KAFKA is not None
        if self.real:
            self.bootstrap_servers = REAL_KAFKA
            self.api_version = None
            self.delivery = "transactional"
            self.embedded = None
        else:
            from daemon.embedded_broker import API_VERSION, EmbeddedBroker

            self.embedded = EmbeddedBroker()
            self.bootstrap_servers = self.embedded.bootstrap_servers
            self.api_version = API_VERSION
            self.delivery = "idempotent"

    @property
    def client_kwargs(self) -> dict:
        # A client that misses a new topic in its first metadata answer waits for the next refresh.
        kw: dict = {"bootstrap_servers": self.bootstrap_servers, "metadata_max_age_ms": METADATA_MAX_AGE_MS}
        if self.api_version:
            kw["api_version"] = tuple(int(p) for p in self.api_version.split("."))
        return kw

    def create_topic(self, name: str, partitions: int = 1) -> str:
        if self.embedded is not None:
            self.embedded.create_topic(name, partitions)
        else:
            from kafka.admin import KafkaAdminClient, NewTopic

            admin = KafkaAdminClient(**self.client_kwargs)
            admin.create_topics([NewTopic(name, partitions, 1)])
            admin.close()
        return name

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.close()


@pytest.fixture
def broker() -> Iterator[Broker]:
    b = Broker()
    yield b
    b.close()


@pytest.fixture
def topic_names() -> Callable[[str], str]:
    suffix = uuid.uuid4().hex[:8]
    return lambda base: f"{base}-{suffix}"


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    from tests.factories import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"datasets not found at {DATA_DIR} (set SENTISTREAM_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(autouse=True)
def _no_leftover_daemons() -> Iterator[None]:
    yield
    harness = sys.modules.get("tests.daemon.harness")
    if harness is not None:
        harness.kill_leftovers()


def pytest_collection_modifyitems(config, items):
    # The embedded mock cluster is nondeterministic at group join (missed topic metadata, SyncGroup
    # error 42 with a second member): a Kafka test gets up to two reruns, reported as R in the summary.
    for item in items:
        if item.get_closest_marker("kafka") and not item.get_closest_marker("flaky"):
            item.add_marker(pytest.mark.flaky(reruns=2, reruns_delay=2))

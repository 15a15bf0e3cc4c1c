"""The Grafana dashboard and the migration's views, run on data the real daemon wrote.

The daemon consumes the demo profile's messages from the test broker and writes Postgres through its
own sink; then every SQL query of the dashboard (Grafana macros expanded as Grafana expands them) and
every view runs as the read-only role deploy/postgres/initdb creates for Grafana."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import make_url

from daemon.tansu_broker import free_port
from schemas.db import upgrade
from tests.daemon.harness import DaemonThread, count, make_settings, make_topics, produce, wait_for
from tests.deploy.grafana import interpolate, prometheus_targets, sql_targets
from tests.deploy.stack import DASHBOARD, DEPLOY, resolved_config

pytestmark = pytest.mark.kafka

DEMO_MESSAGES = DEPLOY / "demo" / "messages.jsonl"
READER_SCRIPT = DEPLOY / "postgres" / "initdb" / "10-grafana-reader.sh"

VIEWS = {
    "v_sentiment_hourly": ["hour", "source", "label", "messages", "avg_confidence"],
    "v_confidence_hourly": ["hour", "label", "bucket", "messages"],
    "v_volume_minutely": ["minute", "topic", "messages", "avg_latency_ms", "max_latency_ms"],
    "v_dead_letters_hourly": ["hour", "error_kind", "topic", "messages"],
    "v_adapter_versions_hourly": ["hour", "model_version", "adapter_version", "messages", "first_seen",
                                  "last_seen"],
}
NUMBER = (int, float, Decimal)


@dataclass
class Run:
    predictions: int
    dead_letters: int
    metrics: str
    healthcheck_rc: int


def _stream_demo_through_daemon(broker, topic_names, database_url, model_dir) -> Run:
    topics = make_topics(broker, topic_names, partitions=2)
    lines = DEMO_MESSAGES.read_bytes().splitlines()
    produce(broker, topics["input"], ((None, value) for value in lines))
    port = free_port()
    settings = make_settings(broker, database_url, topics, model_dir,
                             observability={"http_host": "127.0.0.1", "http_port": port, "log_level": "WARNING"})
    # The compose file's own healthcheck command, pointed at this daemon's port.
    health_cmd = resolved_config()["services"]["daemon"]["healthcheck"]["test"]
    assert health_cmd[:2] == ["CMD", "python"]
    health_cmd = [sys.executable, *[a.replace(":9108/", f":{port}/") for a in health_cmd[2:]]]
    with DaemonThread(settings) as d:
        assert wait_for(lambda: count(database_url, "select count(*) from predictions")
                        + count(database_url, "select count(*) from dead_letters") >= len(lines), timeout=120)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        healthcheck_rc = subprocess.run(health_cmd, timeout=30).returncode
        assert d.stop() == 0
    return Run(count(database_url, "select count(*) from predictions"),
               count(database_url, "select count(*) from dead_letters"), metrics, healthcheck_rc)


@pytest.fixture
def grafana_database(make_database):
    """An empty database prepared as in production: the reader role first (Postgres init script),
    then migrations as the owner. Yields (owner URL, reader URL)."""
    owner_url = make_database(migrate=False)
    url = make_url(owner_url)
    reader = f"grafana_reader_{uuid.uuid4().hex[:8]}"
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "PGHOST": url.host or "127.0.0.1", "PGPORT": str(url.port or 5432),
           "POSTGRES_USER": url.username, "POSTGRES_DB": url.database,
           "GRAFANA_DB_USER": reader, "GRAFANA_DB_PASSWORD": "reader-pw"}
    subprocess.run(["sh", str(READER_SCRIPT)], env=env, check=True, capture_output=True, timeout=60)
    upgrade(owner_url)
    yield owner_url, url.set(username=reader, password="reader-pw").render_as_string(hide_password=False)
    owner = create_engine(owner_url, isolation_level="AUTOCOMMIT")
    with owner.connect() as c:
        c.execute(text(f'DROP OWNED BY "{reader}"'))
        c.execute(text(f'DROP ROLE "{reader}"'))
    owner.dispose()


def _rows(url: str, sql: str) -> tuple[list[str], list[tuple]]:
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            result = c.exec_driver_sql(sql)
            return list(result.keys()), [tuple(r) for r in result]
    finally:
        eng.dispose()


def _check_shape(title: str, fmt: str, cols: list[str], rows: list[tuple]) -> None:
    assert rows, f"panel {title!r} returned no rows"
    if fmt == "time_series":
        assert "time" in cols, f"panel {title!r}: a time series query needs a 'time' column, got {cols}"
        t = cols.index("time")
        values = [i for i, c in enumerate(cols) if c not in ("time", "metric")]
        assert values, f"panel {title!r} has no value column"
        for r in rows:
            assert isinstance(r[t], (datetime, *NUMBER)), f"panel {title!r}: time is {r[t]!r}"
            assert all(isinstance(r[i], NUMBER) for i in values), f"panel {title!r}: row {r}"
            if "metric" in cols:
                assert isinstance(r[cols.index("metric")], str)
    else:
        assert fmt == "table", f"panel {title!r}: unknown format {fmt}"
        assert all(len(r) == len(cols) for r in rows)
        assert any(isinstance(v, NUMBER) for v in rows[0]), f"panel {title!r}: no numeric column in {rows[0]}"


def test_dashboard_queries_and_views_on_daemon_written_postgres(broker, topic_names, grafana_database,
                                                                tiny_bert_dir):
    owner_url, reader_url = grafana_database
    run = _stream_demo_through_daemon(broker, topic_names, owner_url, tiny_bert_dir)
    assert run.predictions == 36 and run.dead_letters == 3

    now = datetime.now(timezone.utc)
    start, end = now - timedelta(hours=6), now + timedelta(minutes=5)
    by_title: dict[str, list] = {}
    targets = sql_targets(DASHBOARD)
    assert len(targets) >= 10
    for panel, target in targets:
        sql = interpolate(target["rawSql"], start, end)
        cols, rows = _rows(reader_url, sql)
        _check_shape(panel["title"], target.get("format", "time_series"), cols, rows)
        by_title.setdefault(panel["title"], []).append((cols, rows))

    # Totals the panels show agree with the tables the daemon wrote.
    (cols, rows), = by_title["Sentiment per hour"]
    assert sum(r[cols.index("messages")] for r in rows) == run.predictions
    (cols, rows), = by_title["Dead letters by reason (range)"]
    assert dict(rows) == {"empty_text": 1, "missing_text": 1, "invalid_json": 1}
    (_, preds), (_, dead) = by_title["Predictions in range"]
    assert preds == [(run.predictions,)] and dead == [(run.dead_letters,)]
    (cols, rows), = by_title["Confidence distribution"]
    assert sum(r[1] for r in rows) == run.predictions
    assert all(re.fullmatch(r"\d\.\d-\d\.\d", r[0]) for r in rows)
    (cols, rows), = by_title["Sentiment by source"]
    assert {r[0] for r in rows} == {"twitter", "reviews"}
    for source in ("twitter", "reviews"):
        assert sum(r[cols.index("pct_of_source")] for r in rows if r[0] == source) == pytest.approx(100, abs=0.3)
    (cols, rows), = by_title["Model and adapter versions"]
    assert [(r[0], r[1], r[-1]) for r in rows] == [(tiny_bert_dir.name, "base", run.predictions)]
    (cols, rows), _ = by_title["Volume (messages per 5 minutes)"]
    assert sum(r[cols.index("messages")] for r in rows) == run.predictions

    # Every view, as the reader: the columns the dashboard relies on, totals matching the tables.
    for view, expected in VIEWS.items():
        cols, rows = _rows(reader_url, f"SELECT * FROM {view}")
        assert cols == expected, view
        assert sum(r[cols.index("messages")] for r in rows) == (
            run.dead_letters if view == "v_dead_letters_hourly" else run.predictions), view

    # The reader role can read, nothing else.
    with pytest.raises(exc.DBAPIError, match="permission denied|read-only"):
        _rows(reader_url, "INSERT INTO labels (message_id, label, labeled_by) VALUES ('x', 'positive', 'grafana')")

    # Prometheus panels: every metric they query is one the daemon exports; the compose healthcheck passes.
    exported = _exported_sample_names(run.metrics)
    for panel, target in prometheus_targets(DASHBOARD):
        for name in re.findall(r"\b(sentistream_[a-z0-9_]+)", target["expr"]):
            assert name in exported, f"panel {panel['title']!r} queries {name}, which the daemon does not export"
    assert run.healthcheck_rc == 0


def _exported_sample_names(exposition: str) -> set[str]:
    """Series names Prometheus stores for each family in a /metrics page (even families with no samples yet)."""
    suffixes = {"counter": ["_total", "_created"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count", "_created"],
                "summary": ["", "_sum", "_count", "_created"]}
    names = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M):
        # The text format names counters with their _total suffix already.
        base = family.removesuffix("_total") if kind == "counter" else family
        names |= {base + s for s in suffixes.get(kind, [""])}
    return names


def test_views_on_daemon_written_sqlite(broker, topic_names, tmp_path, tiny_bert_dir):
    """The embedded demo's database: migration 0002 gives SQLite the same views with the same columns."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    run = _stream_demo_through_daemon(broker, topic_names, url, tiny_bert_dir)
    assert run.predictions == 36 and run.dead_letters == 3
    for view, expected in VIEWS.items():
        cols, rows = _rows(url, f"SELECT * FROM {view}")
        assert cols == expected, view
        assert rows, view
        assert sum(r[cols.index("messages")] for r in rows) == (
            run.dead_letters if view == "v_dead_letters_hourly" else run.predictions), view
    cols, rows = _rows(url, "SELECT bucket, messages FROM v_confidence_hourly")
    assert all(0 <= b <= 0.9 for b, _ in rows)

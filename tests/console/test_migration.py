"""Revision 0005 on a database at 0004 with rows in it, and through the real ``db upgrade``; the daemon's
Postgres sink fills the new margin column."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import inspect, text

from daemon.batch import Batch, Item
from daemon.sinks.postgres import PostgresSink
from schemas.db import alembic_config, make_engine, upgrade
from schemas.messages import InboundMessage, Prediction
from schemas.scores import margin
from schemas.settings import Settings
from tests.cli.runner import clean_env, sentistream


def test_upgrade_from_0004_keeps_rows_and_adds_the_console_schema(make_database):
    url = make_database(migrate=False)
    upgrade(url, "0004")
    engine = make_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as c:
        c.execute(text("INSERT INTO predictions (message_id, text, label, label_id, scores, confidence, "
                       "model_version, topic, partition, \"offset\", latency_ms, received_at, classified_at) VALUES "
                       "('old', 't', 'positive', 1, '{}', 0.9, 'm', 'in', 0, 0, 1, :now, :now)"), {"now": now})
    upgrade(url)
    db = inspect(engine)
    assert {"console_users", "console_audit"} <= set(db.get_table_names())
    assert "ix_predictions_margin" in {i["name"] for i in db.get_indexes("predictions")}
    assert "ix_predictions_text_trgm" in {i["name"] for i in db.get_indexes("predictions")}
    assert "ix_labels_labeled_by_labeled_at" in {i["name"] for i in db.get_indexes("labels")}
    with engine.connect() as c:
        assert c.execute(text("SELECT margin FROM predictions WHERE message_id = 'old'")).scalar() is None
    command.downgrade(alembic_config(url), "0004")  # and back down: the downgrade is clean
    assert "console_users" not in inspect(engine).get_table_names()
    engine.dispose()


def test_db_upgrade_on_an_empty_database(make_database):
    url = make_database(migrate=False)
    proc = sentistream("db", "upgrade", env=clean_env(SENTISTREAM_DATABASE__URL=url))
    assert proc.returncode == 0 and "is at revision head" in proc.stdout.decode()


def test_the_daemons_sink_writes_the_margin_of_the_scores(database_url):
    scores = {"negative": 0.2, "neutral": 0.3, "positive": 0.5}
    now = datetime.now(UTC)
    batch = Batch(items=[Item(InboundMessage(id="m", text="t"), "in", 0, 0, 0, None, b"t")],
                  predictions=[Prediction(message_id="m", label="positive", label_id=2, scores=scores,
                                          confidence=0.5, model_version="x", latency_ms=1.0, received_at=now,
                                          classified_at=now)])
    sink = PostgresSink(Settings(database={"url": database_url}).database)
    try:
        sink.write(batch)
    finally:
        sink.close()
    engine = make_engine(database_url)
    with engine.connect() as c:
        stored = c.execute(text("SELECT margin FROM predictions WHERE message_id = 'm'")).scalar_one()
    engine.dispose()
    assert stored == margin(scores) == pytest.approx(0.2)

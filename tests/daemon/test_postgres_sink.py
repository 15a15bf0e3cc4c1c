"""The database sink on a real Postgres (COPY into the staging table, then one idempotent merge)
and on SQLite (the demo's multi-row insert): the same rows either way, nothing written twice."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select, text

from daemon.batch import Batch, Classified, Item
from daemon.errors import SinkRejected, SinkUnavailable
from daemon.sinks.postgres import PREDICTION_COLUMNS, STAGING, PostgresSink
from schemas.db import PredictionRow, upgrade
from schemas.messages import DeadLetter, InboundMessage
from schemas.settings import DatabaseSettings
from tests.errors import chain_mentions

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
# What the COPY text format must escape, and what a tweet holds.
AWKWARD = ["tab\there", "new\nline", "back\\slash \\N", "quote \" and ' ", "émoji 🎉 한국어", "\\.", "cr\r\n"]


def batch_of(texts: list[str], prefix: str = "m", start: int = 0) -> Batch:
    b = Batch()
    for i, t in enumerate(texts, start):
        msg = InboundMessage(id=f"{prefix}{i}", text=t, source="src" if i % 2 else None,
                             author="a\tb" if i % 3 == 0 else None, created_at=T0 if i % 2 else None)
        b.items.append(Item(msg, "in", 0, i, 1_765_000_000_000, None, t.encode()))
        b.predictions.append(Classified(
            message_id=msg.id, label="positive", label_id=1, scores={"negative": 0.2, "positive": 0.8},
            confidence=0.8, model_version="mv", adapter_version="av" if i % 2 else None, latency_ms=1.5,
            source=msg.source, lang="en" if i % 2 else None, lang_supported=True if i % 2 else None,
            received_at=T0, classified_at=T0,
        ))
    return b


def stored(url: str) -> dict[str, dict]:
    engine = create_engine(url)
    with engine.connect() as c:
        rows = c.execute(select(*(PredictionRow.__table__.c[col] for col in PREDICTION_COLUMNS))).mappings().all()
    engine.dispose()
    return {r["message_id"]: {k: _aware(v) for k, v in r.items()} for r in rows}


def _aware(v):
    # SQLite keeps no time zone: its datetimes come back naive, in the UTC they were written in.
    return v.replace(tzinfo=timezone.utc) if isinstance(v, datetime) and v.tzinfo is None else v


def expected(batch: Batch) -> dict[str, dict]:
    out = {}
    for item, p in zip(batch.items, batch.predictions):
        m = item.msg
        out[m.id] = {
            "message_id": m.id, "text": m.text, "label": p.label, "label_id": p.label_id, "scores": p.scores,
            "confidence": p.confidence, "model_version": p.model_version, "adapter_version": p.adapter_version,
            "source": m.source, "lang": p.lang, "lang_supported": p.lang_supported, "author": m.author,
            "message_created_at": m.created_at, "topic": item.topic, "partition": item.partition,
            "offset": item.offset, "latency_ms": p.latency_ms, "received_at": p.received_at,
            "classified_at": p.classified_at, "margin": pytest.approx(0.6),
        }
    return out


def test_the_columns_written_are_every_column_but_the_servers_own():
    assert set(PREDICTION_COLUMNS) == {c.name for c in PredictionRow.__table__.columns} - {"written_at"}


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request, make_database, tmp_path) -> str:
    """Both engines the sink serves (SQLite: the demo's default database)."""
    if request.param == "postgres":
        return make_database()
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    return url


def test_rows_are_stored_exactly_and_a_replay_adds_nothing(db_url):
    sink = PostgresSink(DatabaseSettings(url=db_url))
    first = batch_of(AWKWARD)
    sink.write(first)
    sink.write(first)  # a retry after a failure later in the checkpoint
    overlapping = batch_of(["new one", "another"], start=len(AWKWARD) - 1)  # m6 again, then m7, m8
    sink.write(overlapping)
    sink.close()
    want = expected(first) | {k: v for k, v in expected(overlapping).items() if k != f"m{len(AWKWARD) - 1}"}
    assert stored(db_url) == want


def test_the_staging_table_is_empty_after_each_commit(database_url):
    # One pooled connection for both writes: rows of the first must not ride along with the second.
    sink = PostgresSink(DatabaseSettings(url=database_url, pool_size=1))
    sink.write(batch_of(["a", "b"]))
    with sink.engine.connect() as c:
        assert c.execute(text(f"select count(*) from {STAGING}")).scalar_one() == 0
    sink.write(batch_of(["c"], start=2))
    sink.close()
    assert sorted(stored(database_url)) == ["m0", "m1", "m2"]


def test_dead_letters_go_in_the_same_transaction(database_url):
    batch = batch_of(["fine"])
    batch.dead.append(DeadLetter(original=b"\xff", topic="in", partition=0, offset=9,
                                 error_kind="undecodable_bytes", error_text="value is not UTF-8 at byte 0"))
    sink = PostgresSink(DatabaseSettings(url=database_url))
    sink.write(batch)
    sink.write(batch)
    sink.close()
    engine = create_engine(database_url)
    with engine.connect() as c:
        assert c.execute(text("select count(*) from dead_letters")).scalar_one() == 1
    engine.dispose()
    assert list(stored(database_url)) == ["m0"]


def test_a_refused_row_is_one_line_and_its_text_is_nowhere_in_the_error(database_url):
    # A constraint of the operator's that the row breaks: the server's DETAIL quotes the whole row.
    engine = create_engine(database_url)
    with engine.begin() as c:
        c.execute(text("ALTER TABLE predictions ADD CONSTRAINT short_texts CHECK (length(text) < 5)"))
    engine.dispose()
    sink = PostgresSink(DatabaseSettings(url=database_url))
    with pytest.raises(SinkRejected) as e:
        sink.write(batch_of(["secret message text"]))
    sink.close()
    assert "short_texts" in str(e.value)
    assert chain_mentions(e.value, "secret") == []


def test_a_missing_schema_is_one_line_without_message_text(make_database):
    url = make_database(migrate=False)
    sink = PostgresSink(DatabaseSettings(url=url))
    with pytest.raises(SinkRejected) as e:
        sink.write(batch_of(["secret message text"]))
    sink.close()
    msg = str(e.value)
    assert "sentistream db upgrade" in msg and "predictions" in msg
    assert "secret" not in msg and "\n" not in msg


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                        max_size=40).filter(str.strip), min_size=1, max_size=8))
def test_any_text_survives_the_copy_byte_for_byte(database_url, texts):
    sink = PostgresSink(DatabaseSettings(url=database_url))
    prefix = f"h{abs(hash(tuple(texts)))}-"
    batch = batch_of(texts, prefix=prefix)
    sink.write(batch)
    sink.close()
    got = {k: v["text"] for k, v in stored(database_url).items() if k.startswith(prefix)}
    assert got == {f"{prefix}{i}": t for i, t in enumerate(texts)}


def test_a_connection_killed_between_batches_fails_one_write_and_the_retry_reconnects(database_url):
    sink = PostgresSink(DatabaseSettings(url=database_url, pool_size=1))
    sink.write(batch_of(["first"]))
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:  # as a server restart or a network cut would
        c.execute(text("select pg_terminate_backend(pid) from pg_stat_activity "
                       "where datname = current_database() and pid <> pg_backend_pid()"))
    admin.dispose()
    second = batch_of(["second"], start=1)
    with pytest.raises(SinkUnavailable):
        sink.write(second)
    sink.write(second)  # the checkpoint's retry
    sink.close()
    assert sorted(stored(database_url)) == ["m0", "m1"]

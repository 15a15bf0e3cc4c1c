"""Poison input: 10,000+ hypothesis-generated hostile records through one daemon run.

Every record must end up either classified (its text stored byte-exact) or dead-lettered with a
reason; the daemon must never crash or stall.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from kafka import KafkaProducer
from sqlalchemy import create_engine, text

from schemas import messages as m
from tests.daemon.harness import (
    DaemonThread,
    committed_and_end,
    count,
    make_settings,
    make_topics,
    read_topic,
    wait_for,
)
from tests.reliability.fuzz import cases, materialize

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N_CASES = 10_000
MAX_TEXT = 1_000_000
PARTITIONS = 4
REASONS = {m.UNDECODABLE, m.INVALID_JSON, m.MISSING_TEXT, m.EMPTY_TEXT, m.OVERSIZED, m.SCHEMA}
# Hand-written cases hypothesis would rarely reach: 1 MB texts at and over the limit, NUL bytes.
BIG = [
    ("big_plain", b"big-plain", ("a " * (MAX_TEXT // 2)).encode()),
    ("big_emoji", b"big-emoji", json.dumps({"id": "big-emoji", "text": "😀" * 250_000}, ensure_ascii=False).encode()),
    ("big_over", b"big-over", json.dumps({"id": "big-over", "text": "b" * (MAX_TEXT + 1)}).encode()),
    ("nul_plain", b"nul-plain", b"text with a \x00 NUL byte"),
    ("nul_key", b"key\x00with-nul", b"plain text, NUL in the key"),
]


def generate() -> list[tuple[str, bytes | None, bytes | None]]:
    out: list = []

    @settings(max_examples=N_CASES, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(cases)
    def collect(case):
        out.append(case)

    collect()
    return [materialize(i, key, *value) for i, (key, value) in enumerate(out)]


def produce_spread(broker, topic: str, records: list) -> list[tuple[int, int]]:
    """Round-robin over PARTITIONS (the mock broker drops a partition's oldest data past ~5 MB);
    returns each record's (partition, offset)."""
    p = KafkaProducer(**broker.client_kwargs, acks="all", linger_ms=5)
    for i, (_, key, value) in enumerate(records):
        p.send(topic, key=key, value=value, partition=i % PARTITIONS)
    p.flush()
    p.close()
    return [(i % PARTITIONS, i // PARTITIONS) for i in range(len(records))]


def expected(record: tuple[str, bytes | None, bytes | None], topic: str, partition: int, offset: int
             ) -> tuple[str, str]:
    """(message id, text) a classified record must be stored with."""
    _, key, value = record
    doc = None
    if value.decode().lstrip().startswith(("{", "[")):
        doc = orjson.loads(value)
    if doc is None:
        return m.derive_id(topic, partition, offset, key), value.decode()
    mid = doc.get("id")
    mid = m.derive_id(topic, partition, offset, key) if mid is None else str(mid)
    return mid, doc["text"]


def test_ten_thousand_hostile_records_are_classified_or_dead_lettered(
    broker, topic_names, database_url, tiny_bert_dir
):
    records = generate() + BIG
    assert len(records) >= N_CASES
    topics = make_topics(broker, topic_names, partitions=PARTITIONS)
    topic = topics["input"]
    positions = produce_spread(broker, topic, records)
    settings_ = make_settings(broker, database_url, topics, tiny_bert_dir,
                              batch={"max_size": 64, "max_wait_ms": 50, "max_text_chars": MAX_TEXT})
    total = len(records)
    done = lambda: (count(database_url, "select count(*) from predictions")  # noqa: E731
                    + count(database_url, "select count(*) from dead_letters"))

    with DaemonThread(settings_) as d:
        assert wait_for(lambda: done() >= total or not d.thread.is_alive(), timeout=300, interval=1)
        assert d.thread.is_alive(), f"daemon died: {d.error!r}"
        assert wait_for(lambda: sum(committed_and_end(broker, topics["group"], topic)[0].values()) == total,
                        timeout=30)
        assert d.stop() == 0

    eng = create_engine(database_url)
    with eng.connect() as c:
        preds = {(p, o): (mid, t) for mid, t, p, o in c.execute(text(
            'select message_id, text, partition, "offset" from predictions'))}
        dead = {(p, o): (k, t, orig, key) for k, t, orig, key, p, o in c.execute(text(
            'select error_kind, error_text, original, key, partition, "offset" from dead_letters'))}
    eng.dispose()

    assert len(preds) + len(dead) == total and not set(preds) & set(dead)
    for pos, record in zip(positions, records):
        kind, key, value = record
        if pos in preds:
            mid, stored = preds[pos]
            want_id, want_text = expected(record, topic, *pos)
            assert mid == want_id, (pos, kind)
            assert stored.encode("utf-8") == want_text.encode("utf-8"), (pos, kind)
            if kind in ("plain", "big_plain"):
                assert stored.encode("utf-8") == value  # the record value itself, byte for byte
        else:
            reason, detail, original, dead_key = dead[pos]
            assert reason in REASONS and detail, (pos, kind, reason)
            assert bytes(original) == (value or b"") and (bytes(dead_key) if dead_key else None) == key
            if kind == "invalid_utf8":
                assert reason == m.UNDECODABLE
            if kind == "tombstone":
                assert reason == m.MISSING_TEXT
    kinds = {r[0]: positions[i] for i, r in enumerate(records)}
    assert kinds["big_plain"] in preds and kinds["big_emoji"] in preds
    assert dead[kinds["big_over"]][0] == m.OVERSIZED
    assert dead[kinds["nul_plain"]][0] == m.SCHEMA
    assert dead[kinds["nul_key"]][:2] == (m.SCHEMA, "id: contains a NUL character, which the database cannot store")
    # Both outcomes are well represented, so neither path went untested.
    assert len(preds) > 2000 and len(dead) > 2000

    out = read_topic(broker, topics["output"], len(preds))
    assert {r.key.decode() for r in out} == {mid for mid, _ in preds.values()}
    dlq = read_topic(broker, topics["dlq"], len(dead))
    assert {(int(dict(r.headers)["source-partition"]), int(dict(r.headers)["source-offset"])) for r in dlq} == set(dead)

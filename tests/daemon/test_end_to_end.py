"""End to end: 2,000 messages with 50 malformed ones, through a real broker and Postgres."""

from __future__ import annotations

import json

import pytest

from schemas import messages as m
from tests.daemon.harness import (
    DaemonThread,
    committed_and_end,
    count,
    make_settings,
    make_topics,
    produce,
    read_topic,
    tweet,
    wait_for,
)

pytestmark = pytest.mark.kafka

MALFORMED = [
    (m.UNDECODABLE, b"\xff\xfe not utf-8 \xc3\x28"),
    (m.INVALID_JSON, b'{"id": "x", "text": "unterminated'),
    (m.MISSING_TEXT, b'{"id": "no-text", "source": "twitter"}'),
    (m.EMPTY_TEXT, b'{"id": "empty", "text": "   "}'),
    (m.OVERSIZED, json.dumps({"id": "big", "text": "a" * 5000}).encode()),
    (m.SCHEMA, b'{"id": ["not", "a", "string"], "text": "hello"}'),
    (m.SCHEMA, b'[1, 2, 3]'),
    (m.SCHEMA, b'{"id": "nul", "text": "has \\u0000 nul"}'),
    (m.SCHEMA, b'{"id": "t", "text": 42}'),
    (m.MISSING_TEXT, None),
]


def stream(n_total: int = 2000, n_bad: int = 50):
    """Yield (key, value, expected_reason|None); bad records spread evenly through the stream."""
    every = n_total // n_bad
    good = 0
    for i in range(n_total):
        if i % every == every - 1:
            reason, value = MALFORMED[(i // every) % len(MALFORMED)]
            yield f"bad{i}".encode(), value, reason
        else:
            if good % 3 == 0:  # plain-text values are accepted too; id from the key
                yield f"m{good}".encode(), f"plain text review {good}".encode(), None
            else:
                key, value = tweet(good)
                yield key, value, None
            good += 1


def test_two_thousand_messages_with_fifty_malformed(broker, topic_names, database_url, tiny_bert_dir):
    topics = make_topics(broker, topic_names)
    records = list(stream())
    bad = [r for r in records if r[2] is not None]
    assert len(records) == 2000 and len(bad) == 50
    produce(broker, topics["input"], ((k, v) for k, v, _ in records))
    settings = make_settings(broker, database_url, topics, tiny_bert_dir, batch={"max_text_chars": 4000})

    with DaemonThread(settings) as d:
        assert wait_for(lambda: count(database_url, "select count(*) from predictions")
                        + count(database_url, "select count(*) from dead_letters") >= 2000, timeout=120)
        assert wait_for(lambda: sum(v for v in committed_and_end(broker, topics["group"], topics["input"])[0].values()
                                    if v) >= 2000, timeout=30)
        assert d.stop() == 0

    assert count(database_url, "select count(*) from predictions") == 1950
    assert count(database_url, "select count(distinct message_id) from predictions") == 1950
    assert count(database_url, "select count(*) from dead_letters") == 50
    expected_reasons = sorted(r for _, _, r in bad)
    from sqlalchemy import create_engine, text

    eng = create_engine(database_url)
    with eng.connect() as c:
        reasons = sorted(c.execute(text("select error_kind from dead_letters")).scalars())
        assert all(c.execute(text("select error_text <> '' from dead_letters")).scalars())
        plain = c.execute(text("select text from predictions where message_id = 'm0'")).scalar_one()
    eng.dispose()
    assert reasons == expected_reasons
    assert plain == "plain text review 0"

    # Output and dead-letter topics: every record at least once. Exactly once only where
    # read_committed readers are spared aborted transactions (a real Kafka; tansu returns them, so
    # a commit retried there shows its first attempt too).
    out = read_topic(broker, topics["output"], 1950)
    ids = {r.key.decode() for r in out}
    assert len(ids) == 1950
    if broker.filters_aborted:
        assert len(out) == 1950
    first = out[0]
    assert dict(first.headers)["content-type"] == b"application/json"
    assert dict(first.headers)["model-version"] == tiny_bert_dir.name.encode()
    pred = json.loads(first.value)
    assert pred["message_id"] == first.key.decode() and pred["label"] in ("negative", "positive")

    dlq = read_topic(broker, topics["dlq"], 50)
    if broker.filters_aborted:
        assert len(dlq) == 50
    reason_by_key = {r.key: dict(r.headers)["error-kind"].decode() for r in dlq}
    assert sorted(reason_by_key.values()) == expected_reasons
    by_key = {r.key: r.value for r in dlq}
    assert by_key[b"bad39"] == MALFORMED[0][1]  # original bytes, untouched

    committed, end = committed_and_end(broker, topics["group"], topics["input"])
    assert committed == end

from __future__ import annotations

import json

import pytest

from schemas import messages as m
from schemas.errors import MessageError


def decode(value, key=None, limit=1000):
    return m.decode_message(value, topic="t", partition=2, offset=7, key=key, max_text_chars=limit)


def test_tweet_shape():
    doc = {"id": 1234567890123, "text": "hello 🌍", "source": "twitter", "lang": "en",
           "created_at": "2026-11-01T10:00:00Z", "author": "@a", "meta": {"retweets": 3}, "extra": 1}
    msg = decode(json.dumps(doc).encode())
    assert msg.id == "1234567890123" and msg.text == "hello 🌍" and msg.meta == {"retweets": 3}
    assert msg.created_at.year == 2026


def test_review_shape_without_id_takes_key_or_position():
    assert decode(b'{"text": "nice"}', key=b"k1").id == "k1"
    assert decode(b'{"text": "nice"}').id == "t:2:7"


def test_plain_text_value():
    msg = decode("  plain review text ".encode(), key=None)
    assert msg.text == "  plain review text " and msg.id == "t:2:7"


@pytest.mark.parametrize("value, kind", [
    (b"\xff\xfe", m.UNDECODABLE),
    (b'{"text": ', m.INVALID_JSON),
    (b'{"id": "a"}', m.MISSING_TEXT),
    (b'{"id": "a", "text": null}', m.MISSING_TEXT),
    (b'{"id": "a", "text": " \\n "}', m.EMPTY_TEXT),
    (b"   ", m.EMPTY_TEXT),
    (b'{"id": "a", "text": "' + b"x" * 1001 + b'"}', m.OVERSIZED),
    (b'[{"text": "a"}]', m.SCHEMA),
    (b'{"id": {"x": 1}, "text": "a"}', m.SCHEMA),
    (b'{"id": "a", "text": "a\\u0000b"}', m.SCHEMA),
    (b'{"id": "a", "text": "ok", "created_at": "yesterday"}', m.SCHEMA),
    (None, m.MISSING_TEXT),
])
def test_rejections_carry_a_reason(value, kind):
    with pytest.raises(MessageError) as e:
        decode(value)
    assert e.value.kind == kind and e.value.detail


def test_values_not_starting_an_object_are_plain_text():
    # A JSON string literal is still a plain UTF-8 value: classified as written, quotes included.
    assert decode(b'"just a string"').text == '"just a string"'


def test_binary_key_gets_hex_id():
    assert decode(b"hi", key=b"\xff\x00").id == "key:ff00"

"""decode_record's NUL pre-scan gives the same verdict as checking every stored field."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from daemon.batch import Item
from daemon.decode import _check_storable, decode_record
from schemas.errors import MessageError
from schemas.messages import DeadLetter, decode_message


class Record:
    def __init__(self, key: bytes | None, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.timestamp = "in", 0, 7, 0
        self.key, self.value = key, value


def reference(r: Record) -> tuple:
    """Every stored field checked, the pre-scan left out."""
    try:
        msg = decode_message(r.value, topic=r.topic, partition=r.partition, offset=r.offset, key=r.key,
                             max_text_chars=10_000)
        _check_storable(msg)
    except MessageError as e:
        return ("dead", e.kind, e.detail)
    return ("ok", msg)


nul_text = st.text(max_size=6).map(lambda t: t + "\x00" + t) | st.text(max_size=12)
int64 = st.integers(-(2**63), 2**63 - 1)  # what orjson.dumps can write (huge ids: tests/reliability/fuzz.py)
docs = st.fixed_dictionaries({"text": nul_text}, optional={
    "id": nul_text | int64, "source": nul_text, "lang": nul_text, "author": nul_text, "meta": st.just({"x": 1}),
})
values = docs.map(orjson.dumps) | nul_text.map(str.encode) | st.binary(max_size=20)
keys = st.none() | st.binary(max_size=6) | nul_text.map(str.encode)


@given(keys, values)
def test_prescan_matches_checking_every_field(key, value):
    r = Record(key, value)
    got = decode_record(r, 10_000)
    want = reference(r)
    if isinstance(got, DeadLetter):
        assert ("dead", got.error_kind, got.error_text) == want
    else:
        assert isinstance(got, Item) and want == ("ok", got.msg)


def test_nul_in_each_stored_field_is_dead_lettered():
    for field in ("id", "source", "lang", "author"):
        doc = {"id": "a", "text": "fine", field: "x\x00y"}
        got = decode_record(Record(None, orjson.dumps(doc)), 10_000)
        assert isinstance(got, DeadLetter) and got.error_text.startswith(f"{field}: contains a NUL")
    got = decode_record(Record(b"k\x00", b"plain text"), 10_000)
    assert isinstance(got, DeadLetter) and got.error_text.startswith("id: contains a NUL")

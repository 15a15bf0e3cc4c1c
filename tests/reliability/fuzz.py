"""Hypothesis strategies for hostile Kafka records: (key, (kind, value)) pairs, made concrete by
:func:`materialize`."""

from __future__ import annotations

import json

from hypothesis import strategies as st

SPECIAL = [
    "\u200b", "\u200c", "\u200d", "\ufeff", "\u2060",  # zero-width
    "\u202e", "\u202d", "\u200f", "\u061c",  # bidi controls
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u05e9\u05dc\u05d5\u05dd",  # RTL scripts
    "😀", "👩\u200d👩\u200d👧\u200d👦", "🇰🇷", "e\u0301", "\U0010ffff", "\ufffd",
    "\\", "'", '"', "%s", "%(x)s", "{}", "\r\n", "\t", "\x7f", "\x1b[31m",
]
SQL = [
    "'; DROP TABLE predictions; --", "1' OR '1'='1", "$$; select pg_sleep(10); $$",
    "); DELETE FROM dead_letters; --", "%' AND 1=1 --", "\\x00", "E'\\\\'", "' || (select current_user) || '",
    "Robert'); DROP TABLE students;--", "COPY predictions TO PROGRAM 'id'",
]

chars = st.one_of(st.characters(codec="utf-8"), st.sampled_from([c for c in SPECIAL if len(c) == 1]))
texts = st.one_of(
    st.text(chars, max_size=80),
    st.sampled_from(SQL),
    st.lists(st.sampled_from(SPECIAL + SQL + ["word"]), max_size=8).map("".join),
)
huge_ints = st.integers(min_value=-(10**400), max_value=10**400)
finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), huge_ints, finite, texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=6
)
text_values = st.one_of(
    texts, texts, texts, st.none(), st.just(""), st.sampled_from([" ", "\n\t ", "\u3000"]),
    texts.map(lambda t: t + "\x00" + t), st.integers(), st.lists(texts, max_size=2), st.booleans(),
)
id_values = st.one_of(texts, texts, st.integers(), huge_ints, st.none(), st.booleans(), st.floats(),
                      st.lists(st.integers(), max_size=2), st.integers(500, 600).map("i".__mul__))
# Any shape: fields missing, of the wrong type, NaN, nested.
docs = st.fixed_dictionaries(
    {},
    optional={
        "id": id_values,
        "text": text_values,
        "source": st.one_of(texts, json_values),
        "lang": st.one_of(texts, json_values),
        "created_at": st.one_of(st.sampled_from(["2024-02-29T12:00:00Z", "2024-13-01", "yesterday"]),
                                st.integers(), huge_ints, texts),
        "author": st.one_of(texts, json_values),
        "meta": json_values,
        "extra": json_values,
    },
)
# The right shape with hostile content: these should mostly be classified.
tweets = st.builds(
    lambda id_, text, extra: {"id": id_, "text": text, **extra},
    texts,
    texts,
    st.fixed_dictionaries({}, optional={
        "source": st.sampled_from(["twitter", "review", "\u202etwitter"]),
        "lang": st.sampled_from(["en", "ko", "ar"]),
        "created_at": st.sampled_from(["2024-02-29T12:00:00Z", "2024-02-29T12:00:00+09:00"]),
        "author": texts,
        "meta": json_values,
    }),
)


def _nest(depth: int, bracket: bool) -> bytes:
    if bracket:
        return b"[" * depth + b"]" * depth
    return b'{"id": "deep", "text": "nested meta", "meta": ' + b'{"a":' * depth + b'"x"' + b"}" * depth + b"}"


values = st.one_of(
    st.tuples(st.just("tweet"), st.tuples(tweets, st.booleans())),
    st.tuples(st.just("tweet"), st.tuples(tweets, st.booleans())),
    st.tuples(st.just("tweet"), st.tuples(tweets, st.booleans())),
    st.tuples(st.just("plain"), texts.map(str.encode)),
    st.tuples(st.just("plain"), texts.map(str.encode)),
    st.tuples(st.just("doc"), st.tuples(docs, st.booleans())),
    st.tuples(st.just("doc"), st.tuples(docs, st.booleans())),
    st.tuples(st.just("json_any"), st.tuples(json_values, st.booleans())),
    st.tuples(st.just("bytes"), st.binary(max_size=120)),
    st.tuples(st.just("invalid_utf8"), st.tuples(
        texts, st.sampled_from([b"\xff", b"\xc3\x28", b"\x80", b"\xed\xa0\x80"]), texts,
    ).map(lambda t: t[0].encode() + t[1] + t[2].encode())),
    st.tuples(st.just("deep"), st.tuples(st.integers(1, 3000), st.booleans()).map(lambda t: _nest(*t))),
    st.tuples(st.just("huge_number"), st.integers(300, 5000).map(
        lambda n: b'{"id": 1' + b"9" * n + b', "text": "big id"}')),
    st.tuples(st.just("tombstone"), st.none()),
)
keys = st.one_of(st.none(), st.binary(max_size=24), texts.map(str.encode))
cases = st.tuples(keys, values)


def materialize(i: int, key: bytes | None, kind: str, value) -> tuple[str, bytes | None, bytes | None]:
    """Make ids unique per case, so each record must be classified or dead-lettered (never a replay)."""
    suffix = f"#{i}"
    if key is None and value is None:
        key = b"tombstone"  # Kafka needs a key or a value
    if key is not None:
        key = key + suffix.encode()
    if kind in ("tweet", "doc", "json_any"):
        doc, ascii_only = value
        if isinstance(doc, dict) and "id" in doc:
            if isinstance(doc["id"], str):
                doc = {**doc, "id": doc["id"] + suffix}
            elif isinstance(doc["id"], int) and not isinstance(doc["id"], bool):
                doc = {**doc, "id": doc["id"] * 1_000_000 + i}
        # The stdlib writes NaN/Infinity (not JSON) for such floats: the daemon must dead-letter those.
        value = json.dumps(doc, ensure_ascii=ascii_only).encode()
    elif kind == "deep":
        value = value.replace(b'"deep"', f'"deep{suffix}"'.encode())
    elif kind == "huge_number":
        value = value.replace(b", ", f"{i:06d}, ".encode(), 1)
    return kind, key, value

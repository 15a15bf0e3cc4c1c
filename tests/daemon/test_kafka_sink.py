"""Output records: pydantic-core's JSON is byte-identical to the orjson encoding it replaced."""

from __future__ import annotations

from datetime import timedelta, timezone

import orjson
from hypothesis import given
from hypothesis import strategies as st

from daemon.batch import Batch
from daemon.sinks.kafka import prediction_records
from schemas.messages import Prediction
from tests.daemon.factories import item

floats = st.floats(allow_nan=True, allow_infinity=True) | st.floats(width=32) | st.floats(-1e-300, 1e-300)
texts = st.text()  # every code point but surrogates: controls, quotes, backslashes, non-BMP
zones = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59),
                                          max_value=timedelta(hours=23, minutes=59))) | st.just(timezone.utc)
predictions = st.builds(
    Prediction,
    message_id=texts, label=texts, label_id=st.integers(-(2**63), 2**63 - 1),
    scores=st.dictionaries(texts, floats, max_size=4), confidence=floats,
    model_version=texts, adapter_version=st.none() | texts, latency_ms=floats,
    source=st.none() | texts, lang=st.none() | texts, lang_supported=st.none() | st.booleans(),
    received_at=st.datetimes(timezones=zones), classified_at=st.datetimes(timezones=zones),
)


@given(st.lists(st.none() | predictions, max_size=5))
def test_prediction_values_are_byte_identical_to_orjson(preds):
    batch = Batch(items=[item(0, i) for i in range(len(preds))], predictions=preds)
    records = prediction_records(batch)
    kept = [p for p in preds if p is not None]
    assert [value for _, value, _ in records] == [orjson.dumps(p.model_dump(mode="json")) for p in kept]
    assert [key for key, _, _ in records] == [p.message_id.encode() for p in kept]
    for (_, _, headers), p in zip(records, kept):
        assert dict(headers) == {"content-type": b"application/json", "model-version": p.model_version.encode(),
                                 "adapter-version": (p.adapter_version or "").encode()}

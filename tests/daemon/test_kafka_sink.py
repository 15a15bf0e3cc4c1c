"""Output records: the hot path's Classified, written by orjson, is byte for byte the JSON pydantic
writes for the wire schema's Prediction (the contract consumers of the output topic read)."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from daemon.batch import Batch, Classified
from daemon.sinks.kafka import prediction_records
from schemas.messages import Prediction
from tests.daemon.factories import item

floats = st.floats(allow_nan=True, allow_infinity=True) | st.floats(width=32) | st.floats(-1e-300, 1e-300)
texts = st.text()  # every code point but surrogates: controls, quotes, backslashes, non-BMP
# The daemon writes UTC; any offset in whole minutes (every zone in use) must give the same bytes too.
# (Sub-minute offsets differ: pydantic truncates them to the minute, orjson rounds.)
zones = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m))) | st.just(timezone.utc)
classified = st.builds(
    Classified,
    message_id=texts, label=texts, label_id=st.integers(-(2**63), 2**63 - 1),
    scores=st.dictionaries(texts, floats, max_size=4), confidence=floats,
    model_version=texts, adapter_version=st.none() | texts, latency_ms=floats,
    source=st.none() | texts, lang=st.none() | texts, lang_supported=st.none() | st.booleans(),
    received_at=st.datetimes(timezones=zones), classified_at=st.datetimes(timezones=zones),
)
pydantic_json = TypeAdapter(Prediction).dump_json


def test_classified_has_the_wire_schemas_fields_in_its_order():
    assert [f.name for f in fields(Classified)] == list(Prediction.model_fields)


@settings(max_examples=500)
@given(st.lists(st.none() | classified, max_size=5))
def test_prediction_values_are_byte_identical_to_pydantics(preds):
    batch = Batch(items=[item(0, i) for i in range(len(preds))], predictions=preds)
    records = prediction_records(batch)
    kept = [p for p in preds if p is not None]
    assert [value for _, value, _ in records] == [pydantic_json(p.prediction()) for p in kept]
    assert [key for key, _, _ in records] == [p.message_id.encode() for p in kept]
    for (_, _, headers), p in zip(records, kept):
        assert dict(headers) == {"content-type": b"application/json", "model-version": p.model_version.encode(),
                                 "adapter-version": (p.adapter_version or "").encode()}

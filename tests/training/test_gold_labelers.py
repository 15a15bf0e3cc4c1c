"""A trusted gold set (training.gold_labelers) on real Postgres: untrusted labels never enter gold,
gold messages are never trained on, and the gold set does not move when new untrusted labels arrive."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.db import make_engine
from schemas.settings import Settings, TrainingSettings
from training import registry
from training.labels import load_examples, write_labels
from training.readers import Example
from training.service import run_once
from training.splits import is_gold, three_way
from tests.training.factories import synthetic

LABELS = ("negative", "positive")
GOLD_FRACTION = 0.2


def flip(e: Example) -> Example:
    return Example(e.message_id, e.text, LABELS[1 - LABELS.index(e.label)])


def in_slice(examples: list[Example]) -> list[Example]:
    return [e for e in examples if is_gold(e.message_id, GOLD_FRACTION)]


def as_pairs(examples: list[Example]) -> set[tuple[str, str]]:
    return {(e.message_id, e.label) for e in examples}


def test_untrusted_labels_never_enter_gold_and_gold_does_not_move(database_url):
    engine = make_engine(database_url)
    pool = synthetic(600, seed=5)
    curated = in_slice(pool[:300])  # the curator labelled the gold-slice messages of the first half
    write_labels(engine, curated, labeled_by="curator", origin="import")
    # The crowd labels everything, flipping every label it puts on a gold-slice message.
    crowd = [flip(e) if is_gold(e.message_id, GOLD_FRACTION) else e for e in pool]
    write_labels(engine, crowd[:400], labeled_by="crowd", origin="kafka")

    def split(**kw):
        return three_way(load_examples(engine, LABELS)[0], GOLD_FRACTION, 0.1, **kw)

    train, val, gold = split(gold_labelers=("curator",))
    assert curated and as_pairs(gold) == as_pairs(curated)
    trained = {e.message_id for e in train + val}
    assert not trained & {e.message_id for e in gold}
    # Crowd labels on gold-slice messages are neither gold nor trained on, even with no curator label.
    assert not any(is_gold(m, GOLD_FRACTION) for m in trained)
    assert trained == {e.message_id for e in crowd[:400] if not is_gold(e.message_id, GOLD_FRACTION)}

    # More crowd labels, on new messages and on the curated ones: the trusted gold set stays put.
    write_labels(engine, crowd[400:], labeled_by="crowd", origin="kafka")
    write_labels(engine, [flip(e) for e in curated], labeled_by="crowd-2", origin="sql")
    train2, _, gold2 = split(gold_labelers=("curator",))
    assert as_pairs(gold2) == as_pairs(curated)
    assert len(train2) > len(train)

    # Unset (the default): every label in the slice is gold, so the latest crowd label wins there.
    _, _, loose = split()
    assert {e.message_id for e in loose} == {e.message_id for e in in_slice(pool)}
    assert as_pairs(loose) == {(e.message_id, flip(e).label) for e in in_slice(pool)}
    engine.dispose()


def test_refits_score_both_adapters_on_the_same_trusted_gold_set(database_url, tiny_bert_dir, tmp_path):
    cfg = TrainingSettings(
        base_model=tiny_bert_dir, adapters_dir=tmp_path / "adapters", reports_dir=tmp_path / "reports",
        max_length=16, lora_r=8, lora_alpha=16, lora_dropout=0.0, learning_rate=1e-2, batch_size=16,
        target_modules=("query", "value", "word_embeddings"), epochs=3, min_new_labels=100,
        gold_fraction=GOLD_FRACTION, val_fraction=0.15, early_stopping_patience=1, warm_start=True,
        gold_labelers=("curator",),
    )
    engine = make_engine(database_url)
    settings = Settings(database={"url": database_url})
    pool = synthetic(800, seed=9)
    curated = in_slice(pool)
    write_labels(engine, curated, labeled_by="curator", origin="import")
    crowd = [flip(e) if is_gold(e.message_id, GOLD_FRACTION) else e for e in pool]
    write_labels(engine, crowd[:400], labeled_by="crowd", origin="kafka")

    first = run_once(settings, cfg, engine=engine, progress=False)
    assert first.action == "promoted", first
    assert first.counts.gold == len(curated)
    assert first.counts.gold_slice_ignored == 0  # every gold-slice message here has a curator label
    gold_metrics = registry.get(engine, first.version)["metrics"]["gold"]
    want = {lab: sum(e.label == lab for e in curated) for lab in LABELS}
    assert {lab: gold_metrics["per_class"][lab]["support"] for lab in LABELS} == want

    write_labels(engine, crowd[400:] + [flip(e) for e in curated[:20]], labeled_by="crowd", origin="kafka")
    write_labels(engine, [Example(f"crowd-only-{i}", "the movie was great", "negative") for i in range(200)
                          if is_gold(f"crowd-only-{i}", GOLD_FRACTION)], labeled_by="crowd", origin="kafka")
    second = run_once(settings, cfg, engine=engine, progress=False)
    assert second.action in ("promoted", "rejected")
    assert second.counts.gold == len(curated)
    assert second.counts.gold_slice_ignored == sum(is_gold(f"crowd-only-{i}", GOLD_FRACTION) for i in range(200))
    # The first adapter, re-measured on this refit's gold set, scores exactly what it scored before.
    active_now = registry.get(engine, second.version)["metrics"]["active_gold"]
    assert active_now["confusion_matrix"] == gold_metrics["confusion_matrix"]
    assert second.scores.active["macro_f1"] == pytest.approx(first.scores.candidate["macro_f1"], abs=1e-9)
    engine.dispose()


def test_empty_labeler_name_fails_naming_the_setting():
    with pytest.raises(ValidationError, match="gold_labelers"):
        TrainingSettings(gold_labelers=("curator", " "))

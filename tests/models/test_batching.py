"""Token-budget batching and padding."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from models.batching import pad_batch, plan_batches, round_up


@given(st.lists(st.integers(1, 300), max_size=200), st.integers(8, 4096), st.sampled_from([1, 8, 64]))
def test_every_row_once_and_within_budget(lengths, budget, multiple):
    batches = plan_batches(lengths, budget, multiple)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        width = round_up(max(lengths[i] for i in b), multiple)
        assert len(b) == 1 or len(b) * width <= budget
        # Length bucketing: rows of one batch are sorted longest first.
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)


def test_similar_lengths_share_a_batch():
    lengths = [5, 120, 6, 118, 7, 119]
    batches = plan_batches(lengths, token_budget=3 * 128, multiple=8)
    assert [sorted(lengths[i] for i in b) for b in batches] == [[118, 119, 120], [5, 6, 7]]


def test_pad_batch_sides_and_multiple():
    left = pad_batch([[1, 2, 3], [4]], pad_id=0, multiple=8, side="left")
    assert left["input_ids"].shape == (2, 8)
    assert left["input_ids"][1].tolist() == [0] * 7 + [4]
    assert left["attention_mask"][0].tolist() == [0] * 5 + [1] * 3
    right = pad_batch([[1, 2, 3], [4]], pad_id=0, multiple=8, side="right")
    assert right["input_ids"][1].tolist() == [4] + [0] * 7

"""console.selection's rule as the benchmark runs it: each pick from a sample, weighted by
1 − margin, with a random share; deterministic for a seeded rng."""

from __future__ import annotations

import math
import random

from console.selection import RANDOM_SHARE, Candidate, choose, key


def test_the_weighted_draw_follows_one_minus_margin():
    # random_share 0 (not the default): the weighted draw alone, for its probabilities.
    a, b = Candidate("a", 0.0), Candidate("b", 0.5)
    rng = random.Random(3)
    first = [choose([a, b], 1, rng, random_share=0.0)[0].message_id for _ in range(3000)]
    # Weights 1 and 0.5: "a" first two times in three (0.03 is over three standard deviations).
    assert abs(first.count("a") / 3000 - 2 / 3) < 0.03


def test_a_message_the_model_is_certain_of_comes_last():
    # random_share 0 (not the default): a random pick could take the certain one at any point.
    cands = [Candidate("certain", 1.0), Candidate("sure", 0.99), Candidate("unsure", 0.1)]
    for seed in range(20):
        picks = choose(cands, 3, random.Random(seed), random_share=0.0)
        assert picks[-1].message_id == "certain"
    assert key(1.0, 0.5) < key(0.99, 0.5) < key(0.1, 0.5) < 0
    assert key(0.3, 1.0) == 0.0 and math.isfinite(key(1.0, 1e-300))


def test_at_the_defaults_one_pick_in_ten_is_random_and_none_repeats():
    rng = random.Random(5)
    cands = [Candidate(f"m{i}", rng.random()) for i in range(2000)]
    picks = choose(cands, 1000, random.Random(6))
    assert len({p.message_id for p in picks}) == 1000
    share = sum(p.reason == "random" for p in picks) / 1000
    assert abs(share - RANDOM_SHARE) < 0.03
    assert {p.reason for p in picks} == {"margin", "random"}
    # The weighted picks lean to low margins: the pool's mean margin is 0.5.
    weighted = [p.margin for p in picks if p.reason == "margin"]
    assert sum(weighted) / len(weighted) < 0.45


def test_each_pick_is_drawn_from_a_sample_of_those_left():
    cands = [Candidate("unsure", 0.0)] + [Candidate(f"sure{i}", 0.999) for i in range(99)]

    def unsure_first(sample_rows: int) -> int:
        # random_share 0 (not the default): the weighted draw alone.
        return sum(choose(cands, 1, random.Random(s), random_share=0.0, sample_rows=sample_rows)[0].message_id
                   == "unsure" for s in range(400))

    # Whole pool (the default 500 covers it): weight 1 against 99 × 0.001, first ~91 % of the time.
    assert unsure_first(500) > 330
    # sample_rows 1 (not the default): a sample of one is a uniform draw, 1 in 100.
    assert 0 < unsure_first(1) < 20
    assert len(choose(cands, 500, random.Random(1))) == 100

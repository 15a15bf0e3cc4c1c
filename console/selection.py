"""Which message a human should label next: the active-learning rule the console's queue serves and
the benchmark measures.

Each pick comes from a uniform sample of about SAMPLE_ROWS unlabelled messages (what the console's
SQL reads: a page sample, never the whole table). One pick in ten is uniform within it, so the gold
set stays unbiased; the rest are a weighted draw with probability proportional to 1 − margin (the
margin between the model's top two classes), so unsure messages come first without every pick being
one of the least-margin few, which a round of picks from one adapter would otherwise crowd into
(benchmarks/RESULTS.md, "Training: active learning", run 4: on the same seeds it scored at or above
least margin first at every label count, and its cost in SQL does not grow with the labels).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

# The daemon stores the same margin with each prediction: one definition, in schemas.
from schemas.scores import margin

# One pick in ten at random: enough to keep the gold set representative, little enough to leave
# the queue's gain intact.
RANDOM_SHARE = 0.1
# Rows a pick is drawn from: enough that the draw within them follows the weights over the whole
# table closely, few enough that the console sorts them in a few milliseconds.
SAMPLE_ROWS = 500
# The weight of a message the model is certain of (margin 1): drawn last, never impossible.
MIN_WEIGHT = 1e-9

__all__ = ["MIN_WEIGHT", "RANDOM_SHARE", "SAMPLE_ROWS", "Candidate", "Pick", "choose", "draw_random", "key",
           "margin"]


@dataclass(frozen=True)
class Candidate:
    message_id: str
    margin: float


@dataclass(frozen=True)
class Pick:
    message_id: str
    margin: float
    # "margin": the margin-weighted draw chose it; "random": the unbiased share.
    reason: str


def draw_random(rng: random.Random, random_share: float = RANDOM_SHARE) -> bool:
    """Whether the next pick is from the random share."""
    return rng.random() < random_share


def key(margin_: float, u: float) -> float:
    """The weighted draw's key for uniform ``u`` in (0, 1): the largest key in a sample is drawn
    with probability proportional to 1 − margin (Efraimidis–Spirakis). console.queries computes the
    same key in SQL."""
    return math.log(u) / max(1.0 - margin_, MIN_WEIGHT)


def choose(candidates: Sequence[Candidate], k: int, rng: random.Random,
           random_share: float = RANDOM_SHARE, sample_rows: int = SAMPLE_ROWS) -> list[Pick]:
    """``k`` picks from ``candidates`` (unlabelled by this labeller), each from a uniform sample of
    ``sample_rows`` of those left: with probability ``random_share`` uniform within it, else the
    weighted draw."""
    left = list(candidates)
    picks: list[Pick] = []
    for _ in range(min(k, len(left))):
        sample = rng.sample(left, min(sample_rows, len(left)))
        if draw_random(rng, random_share):
            c, reason = rng.choice(sample), "random"
        else:
            # 1 - random() lies in (0, 1]: log is defined.
            c, reason = max(sample, key=lambda s: key(s.margin, 1.0 - rng.random())), "margin"
        left.remove(c)
        picks.append(Pick(c.message_id, c.margin, reason))
    return picks

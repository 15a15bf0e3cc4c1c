"""Which message a human should label next: the active-learning rule the console's queue serves and
the benchmark measures.

Least margin between the model's top two classes first (the label that would teach the model most),
with a small random share drawn uniformly from the rest so the gold set stays unbiased.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

# The daemon stores the same margin with each prediction: one definition, in schemas.
from schemas.scores import margin

# One pick in ten at random: enough to keep the gold set representative, little enough to leave
# the queue's gain intact.
RANDOM_SHARE = 0.1

__all__ = ["RANDOM_SHARE", "Candidate", "Pick", "choose", "draw_random", "margin"]


@dataclass(frozen=True)
class Candidate:
    message_id: str
    margin: float


@dataclass(frozen=True)
class Pick:
    message_id: str
    margin: float
    # "margin": the least-margin rule chose it; "random": the unbiased share.
    reason: str


def draw_random(rng: random.Random, random_share: float = RANDOM_SHARE) -> bool:
    """Whether the next pick is from the random share."""
    return rng.random() < random_share


def choose(candidates: Sequence[Candidate], k: int, rng: random.Random,
           random_share: float = RANDOM_SHARE) -> list[Pick]:
    """``k`` picks from ``candidates`` (unlabelled by this labeller), each one at random with
    probability ``random_share``, else the least margin left."""
    by_margin = sorted(candidates, key=lambda c: (c.margin, c.message_id))
    taken: set[str] = set()
    picks: list[Pick] = []
    lowest = 0
    while len(picks) < min(k, len(candidates)):
        if draw_random(rng, random_share):
            rest = [c for c in candidates if c.message_id not in taken]
            c, reason = rng.choice(rest), "random"
        else:
            while by_margin[lowest].message_id in taken:
                lowest += 1
            c, reason = by_margin[lowest], "margin"
        taken.add(c.message_id)
        picks.append(Pick(c.message_id, c.margin, reason))
    return picks

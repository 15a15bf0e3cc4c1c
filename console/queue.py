"""The labelling queue: console.selection's rule (a margin-weighted draw, with a random share) served from SQL."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from console import queries
from console.selection import RANDOM_SHARE, draw_random

# Characters of skipped message ids a session remembers (they ride in the signed cookie, which browsers
# cap at 4 kB); older skips may come back.
SKIP_BUDGET_CHARS = 1500


@dataclass(frozen=True)
class Next:
    item: queries.QueueItem | None
    # "margin" or "random", as console.selection.Pick.reason; None when the queue is empty.
    reason: str | None


def next_message(c: Connection, user: str, skip: Sequence[str], rng: random.Random,
                 random_share: float = RANDOM_SHARE) -> Next:
    """The next message for ``user``, drawn from a page sample: uniformly with probability
    ``random_share``, else weighted by 1 − margin. When the sample holds nothing unlabelled (all of
    it labelled, or no page drawn under a stale row estimate), the least margin left: the queue is
    empty only when every message is labelled."""
    reason = "random" if draw_random(rng, random_share) else "margin"
    draw = queries.next_random if reason == "random" else queries.next_weighted
    percent = queries.sample_percent(queries.estimated_predictions(c))
    item = draw(c, user, percent, rng.random(), skip)
    if item is None:
        item, reason = queries.next_by_margin(c, user, skip), "margin"
    return Next(item, reason if item else None)


def remember_skip(skips: list[str], message_id: str) -> list[str]:
    """The newest skips, ``message_id`` included, that fit SKIP_BUDGET_CHARS."""
    kept, used = [], 0
    for mid in reversed([*skips, message_id]):
        used += len(mid) + 4  # the id and its JSON quoting and separator
        if used > SKIP_BUDGET_CHARS:
            break
        kept.append(mid)
    return kept[::-1]

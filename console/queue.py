"""The labelling queue: console.selection's rule (least margin, with a random share) served from SQL."""

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
    """The next message for ``user``: from the random share with probability ``random_share``
    (a page sample; when it holds nothing unlabelled, the margin rule serves), else the least margin."""
    if draw_random(rng, random_share):
        percent = queries.sample_percent(queries.estimated_predictions(c))
        item = queries.next_random(c, user, percent, rng.random(), skip)
        if item is not None:
            return Next(item, "random")
    item = queries.next_by_margin(c, user, skip)
    return Next(item, "margin" if item else None)


def remember_skip(skips: list[str], message_id: str) -> list[str]:
    """The newest skips, ``message_id`` included, that fit SKIP_BUDGET_CHARS."""
    kept, used = [], 0
    for mid in reversed([*skips, message_id]):
        used += len(mid) + 4  # the id and its JSON quoting and separator
        if used > SKIP_BUDGET_CHARS:
            break
        kept.append(mid)
    return kept[::-1]

"""Stable splits by a hash of the message id: the gold set is never trained on, and with trusted
gold labelers it never moves either."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence

from training.readers import Example


def bucket(message_id: str) -> float:
    """Uniform in [0, 1), the same on every machine and run (unlike Python's salted hash())."""
    return int.from_bytes(hashlib.sha256(message_id.encode("utf-8")).digest()[:8], "big") / 2**64


def is_gold(message_id: str, gold_fraction: float) -> bool:
    return bucket(message_id) < gold_fraction


def dedupe(examples: Sequence[Example]) -> list[Example]:
    """One example per message id; the last one wins (rows come ordered by labeled_at)."""
    return list({e.message_id: e for e in examples}.values())


def three_way(
    examples: Sequence[Example], gold_fraction: float, val_fraction: float,
    gold_labelers: Collection[str] = (),
) -> tuple[list[Example], list[Example], list[Example]]:
    """(train, val, gold): val is the next slice after gold, used for early stopping only.

    With ``gold_labelers``, a message in the gold slice counts only its trusted labelers' labels:
    anyone else's label on it is neither trained on nor scored, so the label stream can neither
    poison the gold set nor move it.
    """
    trusted = set(gold_labelers)
    if trusted:
        examples = [e for e in examples if e.labeled_by in trusted or not is_gold(e.message_id, gold_fraction)]
    train, val, gold = [], [], []
    for e in dedupe(examples):
        b = bucket(e.message_id)
        (gold if b < gold_fraction else val if b < gold_fraction + val_fraction else train).append(e)
    return train, val, gold

"""Small daemon values built in memory, for unit tests that need no broker."""

from __future__ import annotations

from daemon.batch import Item
from schemas.messages import InboundMessage


def item(p: int, o: int) -> Item:
    """An item read from topic "in", partition ``p``, offset ``o``."""
    return Item(InboundMessage(id=f"{p}-{o}", text="t"), "in", p, o, 0, None, b"t")

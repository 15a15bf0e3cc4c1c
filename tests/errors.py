"""What tests check of raised errors."""

from __future__ import annotations


def chain_mentions(exc: BaseException | None, text: str) -> list[BaseException]:
    """The exceptions in ``exc``'s chain (causes and contexts, as a traceback would show them) whose
    str or repr holds ``text``."""
    found = []
    while exc is not None:
        if text in str(exc) or text in repr(exc):
            found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found

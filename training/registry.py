"""The trainer's view of the adapters registry: the table's reads and writes live in schemas.registry
(the console changes it too); here the gate's decision is applied to a candidate."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from schemas.registry import (
    T,
    active,
    get,
    latest,
    list_adapters,
    promote,
    record_gold,
    register,
    reject,
    rollback,
)
from training.gate import Decision

__all__ = ["T", "active", "get", "latest", "list_adapters", "promote", "record_gold", "register", "reject",
           "rollback", "settle"]


def settle(engine: Engine, version: str, decision: Decision, *, channel: str) -> None:
    """Promote or reject a candidate as the gate decided, with its reasons."""
    if decision.promote:
        promote(engine, version, channel=channel, reasons=decision.reasons)
    else:
        reject(engine, version, decision.reasons)

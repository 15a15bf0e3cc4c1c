"""kafka-python's private API: the one module that uses it.

kafka-python 3.0 has no public way to
- wait, for a bounded time, until the client knows a topic's partitions (``partitions_for_topic``
  fetches the metadata without a bound);
- commit offsets from a rebalance listener: it runs on the client's IO thread, where the blocking
  ``commit()`` raises;
- tell whether this member's group generation is still current;
- tell whether this member led the last assignment (logged: on tansu a group stopped and started
  again needs its settled leader stopped first, docs/reliability.md).

So these reach into the pinned version's consumer. What they rely on is checked when this module is
imported (the classes) and when a consumer is handed to it (the instances): a kafka-python that
changed fails at start with one line naming the version to install, instead of an AttributeError
mid-stream or a staleness check that silently never fires.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import kafka
from kafka import OffsetAndMetadata, TopicPartition

from daemon.errors import UnsupportedKafkaClient
from schemas.pins import pinned

# The classes of the objects used below, by module, and the methods called on them.
_CLASSES: dict[tuple[str, str], tuple[str, ...]] = {
    ("kafka.cluster", "ClusterMetadata"): ("partitions_for_topic", "request_update"),
    ("kafka.net.selector", "NetworkSelector"): ("run",),
    ("kafka.net.manager", "KafkaConnectionManager"): ("wait_for",),
    ("kafka.coordinator.consumer", "ConsumerCoordinator"): ("_commit_offsets_sync_async",),
    ("kafka.coordinator.base", "Generation"): ("is_lost",),
}
_ABSENT = object()


def _unsupported(missing: Iterable[str]) -> UnsupportedKafkaClient:
    return UnsupportedKafkaClient(
        f"this kafka-python ({kafka.__version__}; {', '.join(missing)} missing) is not the one sentistream "
        f"was built against: install {pinned('kafka-python')}")


def _has(obj: object, path: str) -> bool:
    for name in path.split("."):
        obj = getattr(obj, name, _ABSENT)
        if obj is _ABSENT:
            return False
    return True


def _require(obj: object, label: str, paths: Iterable[str]) -> None:
    missing = [f"{label}.{p}" for p in paths if not _has(obj, p)]
    if missing:
        raise _unsupported(missing)


def check_classes() -> None:
    """Raise :class:`UnsupportedKafkaClient` unless the installed kafka-python defines every class
    and method this module uses (run at import)."""
    missing = []
    for (module, cls), attrs in _CLASSES.items():
        try:
            found = getattr(importlib.import_module(module), cls, _ABSENT)
        except ImportError:
            found = _ABSENT
        if found is _ABSENT:
            missing.append(f"{module}.{cls}")
        else:
            missing += [f"{cls}.{a}" for a in attrs if not _has(found, a)]
    if missing:
        raise _unsupported(missing)


check_classes()


class ConsumerInternals:
    """The consumer's metadata and its awaitable offset commit."""

    def __init__(self, consumer: kafka.KafkaConsumer) -> None:
        _require(consumer, "KafkaConsumer", (
            "_cluster", "_net", "_manager", "_coordinator._commit_offsets_sync_async"))
        self._consumer = consumer

    def known_partitions(self, topic: str) -> set[int] | None:
        """The partitions of ``topic`` in the client's metadata; None while it has none (no request)."""
        return self._consumer._cluster.partitions_for_topic(topic)

    def refresh_metadata(self, timeout_ms: int) -> None:
        """Ask for a metadata update and wait for it; KafkaTimeoutError after ``timeout_ms``."""
        c = self._consumer
        c._net.run(c._manager.wait_for, c._cluster.request_update(), timeout_ms)

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """The coroutine the blocking ``commit()`` runs, for a listener on the IO thread to await."""
        await self._consumer._coordinator._commit_offsets_sync_async(offsets)


class GroupState:
    """What the consumer's group coordinator last heard from the broker about this member."""

    def __init__(self, consumer: kafka.KafkaConsumer) -> None:
        _require(consumer, "KafkaConsumer", ("_coordinator._generation", "_coordinator.heartbeat.last_receive",
                                             "_coordinator._is_leader"))
        self._coordinator = consumer._coordinator

    def generation_lost(self) -> bool:
        """The broker answered a heartbeat or a commit with an unknown member or an old generation."""
        return self._coordinator._generation.is_lost()

    def is_leader(self) -> bool:
        """Whether this member computed the group's last assignment."""
        return bool(self._coordinator._is_leader)

    def last_heartbeat_answer(self) -> float:
        """When the broker last answered a heartbeat (``time.monotonic()``; -inf: never)."""
        return self._coordinator.heartbeat.last_receive

"""Kafka's default partition of a keyed record, computed for a whole batch before sending.

kafka-python's default partitioner hashes every key in Python inside ``send()`` (about half of
its cost per record); the same murmur2 in native code, passed as ``send(partition=...)``, puts
each record where the default partitioner (and the Java client's) would.
"""

from __future__ import annotations

from collections.abc import Iterable

from murmurhash2 import murmurhash2

# The seed of Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2).
SEED = 0x9747B28C


def key_partitions(keys: Iterable[bytes], partitions: Iterable[int]) -> list[int]:
    """The partition of each key, as Kafka's default partitioner picks it among ``partitions``."""
    ordered = sorted(partitions)
    n = len(ordered)
    if n == 1:
        only = ordered[0]
        return [only for _ in keys]
    return [ordered[(murmurhash2(k, SEED) & 0x7FFFFFFF) % n] for k in keys]

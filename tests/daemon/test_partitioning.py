"""The batch partitioner puts every keyed record where kafka-python's default partitioner would."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import DefaultPartitioner

from daemon.batch import Batch, Classified
from daemon.sinks.kafka import KafkaSink
from daemon.sinks.partitioning import key_partitions
from tests.daemon.factories import item
from tests.daemon.harness import make_settings, make_topics, read_topic


class Cluster:
    """What DefaultPartitioner reads of kafka-python's ClusterMetadata."""

    def __init__(self, partitions: list[int]) -> None:
        self.partitions = set(partitions)

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions


def default_partition(key: bytes, partitions: list[int]) -> int:
    return DefaultPartitioner().partition("t", key, key, None, None, Cluster(partitions))


@given(st.lists(st.binary(max_size=80), max_size=20),
       st.sets(st.integers(0, 200), min_size=1, max_size=40).map(list))
def test_same_partition_as_kafka_pythons_default(keys, partitions):
    assert key_partitions(keys, partitions) == [default_partition(k, partitions) for k in keys]


@given(st.lists(st.text(max_size=40).map(str.encode), max_size=20), st.integers(1, 64))
def test_message_ids_over_contiguous_partitions(keys, n):
    assert key_partitions(keys, range(n)) == [default_partition(k, list(range(n))) for k in keys]


def test_the_sink_sends_each_prediction_to_its_keys_partition(broker, topic_names):
    topics = make_topics(broker, topic_names, partitions=3)
    t = datetime(2026, 12, 7, tzinfo=timezone.utc)
    batch = Batch(items=[item(0, i) for i in range(60)])
    batch.predictions = [
        Classified(message_id=f"msg-{i}", label="positive", label_id=1, scores={"positive": 1.0}, confidence=1.0,
                   model_version="m", adapter_version=None, latency_ms=0.0, source=None, lang=None,
                   lang_supported=None, received_at=t, classified_at=t)
        for i in range(60)
    ]
    sink = KafkaSink(make_settings(broker, "sqlite://", topics, None).kafka)
    sink.write(batch)
    sink.close()
    got = {r.key: r.partition for r in read_topic(broker, topics["output"], 60)}
    assert got == {f"msg-{i}".encode(): default_partition(f"msg-{i}".encode(), [0, 1, 2]) for i in range(60)}
    assert len(set(got.values())) == 3

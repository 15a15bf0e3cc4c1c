"""What the tests assume of their broker, checked against it: a claim in ``tests.brokers.Broker``
that stops holding (a tansu upgrade, another Kafka) fails here first, by name."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.daemon.harness import wait_for

pytestmark = pytest.mark.kafka


def _producer(broker, transactional_id: str) -> KafkaProducer:
    p = KafkaProducer(**broker.client_kwargs, transactional_id=transactional_id)
    p.init_transactions()
    return p


def test_open_transaction_holds_later_offsets_only_where_the_broker_says_so(broker, topic_names):
    if broker.kind == "mock":
        pytest.skip("the mock cluster has no transactions")
    source, out, group = topic_names("in"), topic_names("out"), topic_names("group")
    broker.create_topic(source, 1)
    broker.create_topic(out, 1)
    tp = TopicPartition(source, 0)
    reader = KafkaConsumer(**broker.client_kwargs, group_id=group, enable_auto_commit=False)
    paused, other = _producer(broker, topic_names("paused")), _producer(broker, topic_names("other"))
    try:
        # A producer stops inside a transaction that wrote to the output partition...
        paused.begin_transaction()
        paused.send(out, b"open", partition=0)
        paused.flush()
        # ...and another commits a transaction writing there too, with the group's offset.
        other.begin_transaction()
        other.send(out, b"committed", partition=0)
        other.send_offsets_to_transaction({tp: OffsetAndMetadata(5, "", -1)}, reader.group_metadata())
        other.commit_transaction()

        if broker.open_txn_holds_offsets:
            # Given the time a commit takes to show, it still does not.
            assert not wait_for(lambda: reader.committed(tp) == 5, timeout=2)
        else:
            assert wait_for(lambda: reader.committed(tp) == 5, timeout=10)
        paused.abort_transaction()
        assert wait_for(lambda: reader.committed(tp) == 5, timeout=10)
    finally:
        for client in (paused, other, reader):
            client.close()

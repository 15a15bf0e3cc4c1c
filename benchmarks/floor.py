"""The least any kafka-python + Postgres pipeline does per message, as one serial loop: what the
daemon's capacity is measured against when asking whether 20,000 msg/s fits on this machine.

Per poll (kafka-python, up to 500 records): parse each value (orjson) for its id and text, send one
small prediction per message to the output topic, flush, COPY the rows straight into
``predictions`` in one transaction, commit the offsets. No validation, no model, no dead-letter
handling, no merge on conflict, no transactions: less than any at-least-once pipeline can do.
``producer="librdkafka"`` sends with confluent-kafka's producer instead (the alternative the capacity
issue asks to measure); ``database=False`` leaves Postgres out.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import orjson
import psycopg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from benchmarks import common as c
from benchmarks.dbwrite import PLAIN_COPY

_SCORES = '{"negative": 0.1, "positive": 0.9}'


class _KafkaPython:
    def __init__(self, broker: c.Broker) -> None:
        self.p = KafkaProducer(**broker.client_kwargs, acks="all", enable_idempotence=True, linger_ms=5,
                               batch_size=256 * 1024)

    def send_all(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        for key, value in records:
            self.p.send(topic, key=key, value=value, partition=0)
        self.p.flush()

    def close(self) -> None:
        self.p.close()


class _Librdkafka:
    def __init__(self, broker: c.Broker) -> None:
        from confluent_kafka import Producer

        self.p = Producer({"bootstrap.servers": broker.bootstrap_servers, "acks": "all",
                           "enable.idempotence": True, "linger.ms": 5})

    def send_all(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        produce = self.p.produce
        for key, value in records:
            produce(topic, value=value, key=key, partition=0)
        if self.p.flush(30) != 0:
            raise RuntimeError("librdkafka producer did not deliver everything")

    def close(self) -> None:
        self.p.flush(30)


def floor_rate(broker: c.Broker, db_url: str, topics: dict[str, str], n: int, *,
               producer: str = "kafka-python", database: bool = True) -> float:
    """Messages per second from the first poll until ``n`` offsets are committed."""
    consumer = KafkaConsumer(topics["input"], **broker.client_kwargs, group_id=topics["group"] + "-floor",
                             enable_auto_commit=False, auto_offset_reset="earliest")
    out = _KafkaPython(broker) if producer == "kafka-python" else _Librdkafka(broker)
    conn = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) if database else None
    tp = TopicPartition(topics["input"], 0)
    done, t0 = 0, None
    try:
        while done < n:
            records = consumer.poll(timeout_ms=1000).get(tp, [])
            if not records:
                continue
            if t0 is None:
                t0 = time.perf_counter()
            now = datetime.now(timezone.utc)
            msgs = [(r, orjson.loads(r.value)) for r in records]
            out.send_all(topics["output"], [(r.key, orjson.dumps({"message_id": m["id"], "label": "positive",
                                                                   "confidence": 0.9})) for r, m in msgs])
            if conn is not None:
                with conn.transaction(), conn.cursor() as cur, cur.copy(PLAIN_COPY) as cp:
                    for r, m in msgs:
                        cp.write_row((m["id"], m["text"], "positive", 1, _SCORES, 0.9, "constant", None,
                                      m.get("source"), None, None, None, None, r.topic, r.partition, r.offset,
                                      0.0, now, now, 0.8))
            consumer.commit({tp: OffsetAndMetadata(records[-1].offset + 1, "", -1)})
            done += len(records)
        return n / (time.perf_counter() - t0)
    finally:
        consumer.close()
        out.close()
        if conn is not None:
            conn.close()

"""The Postgres write path alone: the daemon's sink against a plain COPY of the same rows."""

from __future__ import annotations

import time

import psycopg

from benchmarks import common as c
from daemon.batch import Batch
from daemon.decode import decode_record
from daemon.metrics import Metrics
from daemon.sinks.postgres import PREDICTION_COLUMNS, PostgresSink, copy_row, prediction_rows
from daemon.worker import InferenceWorker
from schemas.settings import DatabaseSettings, RetrySettings

# Straight into predictions: no staging table, no merge (what the daemon's sink does beyond a COPY).
PLAIN_COPY = "COPY predictions (" + ", ".join(f'"{col}"' for col in PREDICTION_COLUMNS) + ") FROM STDIN"


class Record:
    """What decode_record reads from a kafka-python ConsumerRecord."""

    __slots__ = ("topic", "partition", "offset", "timestamp", "key", "value")

    def __init__(self, offset: int, key: bytes, value: bytes) -> None:
        self.topic, self.partition, self.offset = "bench", 0, offset
        self.timestamp, self.key, self.value = int(time.time() * 1000), key, value


def batches(prefix: str, n: int, size: int) -> list[Batch]:
    """Decoded, classified (constant classifier) batches, ready for the sinks."""
    texts = c.load_texts(n)
    worker = InferenceWorker(c.ConstantClassifier(), RetrySettings(), Metrics(), 1)
    out = []
    for start in range(0, n, size):
        b = Batch()
        for i in range(start, min(n, start + size)):
            item = decode_record(Record(i, *c.message(prefix, i, texts[i % len(texts)])), 10_000)
            b.items.append(item)
        worker.process(b)
        out.append(b)
    return out


def _timed(fn, work: list) -> float:
    """Rows/s over every unit of work after the first (warm-up)."""
    fn(work[0])
    t0 = time.perf_counter()
    for w in work[1:]:
        fn(w)
    return sum(len(w) for w in work[1:]) / (time.perf_counter() - t0)


def sink_rate(db_url: str, prefix: str, n: int, size: int) -> float:
    sink = PostgresSink(DatabaseSettings(url=db_url))
    try:
        return _timed(sink.write, batches(prefix, n, size))
    finally:
        sink.close()


def copy_rate(db_url: str, prefix: str, n: int, size: int) -> float:
    """COPY of the same rows (built the same way), one transaction per ``size`` rows."""
    rows = [r for b in batches(prefix, n, size) for r in prediction_rows(b)]
    tuples = [copy_row(r) for r in rows]
    chunks = [tuples[i:i + size] for i in range(0, len(tuples), size)]
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:

        def write(chunk):
            with conn.transaction(), conn.cursor() as cur, cur.copy(PLAIN_COPY) as cp:
                for t in chunk:
                    cp.write_row(t)

        if len(chunks) == 1:  # one transaction for everything: time it whole
            t0 = time.perf_counter()
            write(chunks[0])
            return len(tuples) / (time.perf_counter() - t0)
        return _timed(write, chunks)

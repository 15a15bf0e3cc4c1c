"""Where a message's time goes with no model: each daemon stage alone, per message.

    python -m benchmarks.stages [--messages 20000] [--reps 3]

Stages are timed in isolation on the same messages (constant classifier), batches of 128 (about
what the checkpoint merges to under load); medians of ``--reps`` runs. Compare with the
consume-only rate: a stage costing more than 1.25x consume-only per message on its own keeps the
daemon with no model below 0.8x the consume-only rate (the capacity target of benchmarks.pipeline's
measure 3).
"""

from __future__ import annotations

import argparse
import sys
import time

from pydantic import TypeAdapter

from benchmarks import common as c
from benchmarks.dbwrite import Record, batches, copy_rate, sink_rate
from daemon.batch import Item
from daemon.decode import _check_storable, decode_record
from daemon.metrics import Metrics
from daemon.sinks.kafka import KafkaSink, prediction_records
from daemon.worker import InferenceWorker
from models.languages import LanguageSupport
from models.spec import load_spec
from schemas.errors import MessageError
from schemas.messages import Prediction, decode_message
from schemas.settings import KafkaSettings, RetrySettings

BATCH = 128


def _decode_checked(r) -> Item | None:
    """decode_record as it was, without its NUL pre-scan; keeps its result alive as decode_record's
    caller does (the garbage collector's work grows with the live objects)."""
    try:
        msg = decode_message(r.value, topic=r.topic, partition=r.partition, offset=r.offset, key=r.key,
                             max_text_chars=10_000)
        _check_storable(msg)
    except MessageError:
        return None
    return Item(msg, r.topic, r.partition, r.offset, r.timestamp, r.key, r.value)


_pydantic_json = TypeAdapter(Prediction).dump_json


def _records_pydantic(batch) -> list:
    """prediction_records as it was: a pydantic Prediction per message, written by pydantic-core."""
    return [(p.message_id.encode(), _pydantic_json(p.prediction()),
             [("content-type", b"application/json"), ("model-version", p.model_version.encode()),
              ("adapter-version", (p.adapter_version or "").encode())])
            for p in batch.predictions if p is not None]


def _us_per_msg(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e6 / n


def stage_costs(broker: c.Broker, db_url: str, n: int, reps: int) -> list[list[str]]:
    texts = c.load_texts(n)
    results: dict[str, list[float]] = {}

    def add(name: str, us: float) -> None:
        results.setdefault(name, []).append(us)

    for rep in range(reps):
        prefix = f"st{rep}-"
        topics = broker.topics("stages")
        records = [Record(i, *c.message(prefix, i, t)) for i, t in enumerate(texts)]
        broker.produce(topics["input"], ((r.key, r.value) for r in records))
        add("kafka-python consume (poll, parse, crc)", 1e6 / broker.consume_rate(topics["input"], n))
        # Each change and its reference run in alternating order, so neither always runs first.
        pair = [("decode + validate (pydantic)", lambda: [decode_record(r, 10_000) for r in records]),
                ("  reference: every stored field checked for NUL", lambda: [_decode_checked(r) for r in records])]
        for name, fn in pair[::1 if rep % 2 == 0 else -1]:
            add(name, _us_per_msg(fn, n))
        bs = batches(prefix, n, BATCH)
        worker = InferenceWorker(c.ConstantClassifier(), RetrySettings(), Metrics(), 1)
        add("build predictions (worker, no model)", _us_per_msg(lambda: [worker.process(b) for b in bs], n))
        detecting = c.ConstantClassifier()
        detecting.language_support = LanguageSupport.of(load_spec("minilm-lora-sst2"))
        worker = InferenceWorker(detecting, RetrySettings(), Metrics(), 1)
        add("  the same, detecting each language (the default preset's)",
            _us_per_msg(lambda: [worker.process(b) for b in bs], n))
        pair = [("serialize for the output topic (orjson of the dataclass)", lambda: [prediction_records(b) for b in bs]),
                ("  reference: a pydantic Prediction each, pydantic-core's JSON", lambda: [_records_pydantic(b) for b in bs])]
        for name, fn in pair[::1 if rep % 2 == 0 else -1]:
            add(name, _us_per_msg(fn, n))
        sink = KafkaSink(KafkaSettings(bootstrap_servers=broker.bootstrap_servers, api_version=broker.api_version,
                                       delivery="idempotent", output_topic=topics["output"],
                                       dead_letter_topic=topics["dlq"]))
        try:
            sink.write(bs[0])
            add("produce + flush to the output topic", _us_per_msg(lambda: [sink.write(b) for b in bs[1:]],
                                                                    n - len(bs[0].items)))
        finally:
            sink.close()
        add(f"Postgres sink, batches of {BATCH}", 1e6 / sink_rate(db_url, f"sk{rep}-", n, BATCH))
        add("Postgres plain COPY, one transaction", 1e6 / copy_rate(db_url, f"cp{rep}-", n, n))
    consume = c.median(results["kafka-python consume (poll, parse, crc)"])
    return [[name, f"{c.median(v):.1f}", f"{c.median(v) / consume:.1f}", c.fmt_runs(v)] for name, v in results.items()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    broker = c.Broker()
    try:
        with c.database() as db_url:
            rows = stage_costs(broker, db_url, args.messages, args.reps)
    finally:
        broker.close()
    print(f"machine: {c.machine()}\ncommand: python -m benchmarks.stages "
          f"--messages {args.messages} --reps {args.reps}")
    print(c.table(["stage (alone)", "µs per message", "× consume-only", "runs (µs)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

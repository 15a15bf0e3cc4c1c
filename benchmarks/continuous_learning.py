"""Continuous learning with the daemon streaming: does the gate keep the active adapter's gold score
from dropping, reject a round of flipped labels, and does the daemon serve each promoted version?

A curator labels a fixed gold set once: SST-2 sentences whose message id falls in the gold slice
(``training.gold_labelers = ("curator",)``). Then the crowd's labels arrive in rounds through the
labels topic (``training.consumer.LabelsConsumer``), one round with a fraction flipped; the crowd
also labels gold-slice messages, and those labels are ignored. After each round the trainer
refits once (``training.service.run_once``) and the gate decides on the curator's gold set.

Meanwhile the daemon runs as its own process (benchmarks/daemon_proc.py, as ``sentistream run``
would) with ``model.follow_registry`` and a 300 s polling fallback, so a swap within seconds comes
from LISTEN/NOTIFY; it classifies a steady stream of SST-2 dev sentences. Real services: a fresh
Postgres database and the embedded Kafka-protocol broker; MiniLM + LoRA, warm-started each round.

    .venv/bin/python -m benchmarks.continuous_learning     # 5 rounds of 2,000, round 4 30 % flipped
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaProducer
from sqlalchemy import text

from benchmarks import common as c
from schemas.settings import KafkaSettings, Settings, TrainingSettings
from training import registry
from training.consumer import LabelsConsumer
from training.labels import write_labels
from training.outcome import Refit
from training.readers import Example, read_labeled, split
from training.service import run_once
from training.splits import is_gold

LABELS = ("negative", "positive")
METRIC = "macro_f1"  # the gate's (training.primary_metric's default)
HEADERS = ["round", "labels in", "flipped", "gold n", "gold-slice labels ignored", "train n", "decision",
           "candidate gold macro-F1", "active gold macro-F1 (before)", "active gold macro-F1 (after)", "refit s",
           "daemon serving after", "swap s", "reasons"]


def sst2(name: str, min_words: int = 0) -> list[Example]:
    rows, _ = split(list(read_labeled(c.DATA_DIR / "sst2" / name, LABELS)))
    return [r for r in rows if len(r.text.split()) >= min_words]


def plan(args, gold_fraction: float):
    """(curator's gold labels, crowd rounds as (records, n flipped)). Sentences of 6+ words: closer
    to real messages than SST-2's one-word phrases. The curator labels every other gold-slice
    message of a shuffled pool; the crowd labels the pool from its start, so it labels curated
    gold messages (its labels there are ignored: the curator's count) and uncurated ones (ignored)."""
    pool = sst2("train.tsv", min_words=6)
    rng = random.Random(args.seed)
    rng.shuffle(pool)
    gold = [e for e in pool if is_gold(e.message_id, gold_fraction)][::2][:args.gold_size]
    rounds = []
    for k in range(args.rounds):
        chunk = pool[k * args.round_size:(k + 1) * args.round_size]
        n_flip = int(args.flip_fraction * len(chunk)) if k + 1 == args.flip_round else 0
        # uniform: symmetric noise over both classes; positive: positives relabelled negative only.
        candidates = [i for i, e in enumerate(chunk) if args.flip_mode == "uniform" or e.label == "positive"]
        flipped = set(rng.sample(candidates, n_flip))
        rounds.append(([{"message_id": e.message_id, "text": e.text, "labeled_by": "crowd",
                         "label": LABELS[1 - LABELS.index(e.label)] if i in flipped else e.label}
                        for i, e in enumerate(chunk)], n_flip))
    return gold, rounds


def db_now(db: c.Db):
    return db.scalar("select clock_timestamp()")


def serving_after(db: c.Db, since, expect: str | None, timeout: float = 180) -> tuple[str | None, float | None]:
    """The adapter version of the first row written after ``since`` that carries ``expect`` (or of
    the newest row when that never comes), and seconds from ``since`` to that row's write."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with db.engine.connect() as conn:
            row = conn.execute(text(
                "select adapter_version, extract(epoch from written_at - :t) from predictions "
                "where written_at > :t and adapter_version is not distinct from :v order by written_at limit 1"),
                {"t": since, "v": expect}).first()
        if row:
            return row[0], float(row[1])
        time.sleep(0.5)
    with db.engine.connect() as conn:
        row = conn.execute(text("select adapter_version from predictions order by written_at desc limit 1")).first()
    return (row[0] if row else None), None


def served_in_order(db: c.Db) -> list[str | None]:
    """Adapter versions in offset order, consecutive repeats collapsed (1 input partition)."""
    with db.engine.connect() as conn:
        seq = [v for (v,) in conn.execute(text('select adapter_version from predictions order by "offset"'))]
    return [v for i, v in enumerate(seq) if i == 0 or v != seq[i - 1]]


def stream_accuracy(db: c.Db, dev: list[Example], names: dict[str, str]) -> list[tuple[str, int, str]]:
    """Per adapter version: rows and accuracy of the daemon's labels on the streamed dev sentences."""
    per: dict[str | None, list[bool]] = {}
    with db.engine.connect() as conn:
        for mid, label, v in conn.execute(text("select message_id, label, adapter_version from predictions "
                                                "order by \"offset\"")):
            per.setdefault(v, []).append(label == dev[int(mid[1:]) % len(dev)].label)
    return [(names.get(v, v or "- (base, no adapter)"), len(h), f"{sum(h) / len(h):.4f}") for v, h in per.items()]


@dataclass(frozen=True)
class Round:
    """One round's refit, and what the active adapter and the daemon were after its decision."""
    refit: Refit
    active_after: float  # the active adapter's gold macro-F1
    serving: str | None  # the adapter version on the daemon's first row written after the decision
    expected: str  # the active version

    @property
    def action(self) -> str:
        return self.refit.action

    @property
    def version(self) -> str:
        return self.refit.version

    @property
    def gold(self) -> int:
        return self.refit.counts.gold

    @property
    def gold_slice_ignored(self) -> int:
        return self.refit.counts.gold_slice_ignored

    @property
    def active_before(self) -> float | None:
        """The active adapter's gold macro-F1, re-measured on this round's gold set."""
        return self.refit.scores.active[METRIC] if self.refit.scores.active else None


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def rounds_loop(args, cfg, db, url, producer, consumer, labels_topic, gold_seed, rounds, rows, results, promoted,
                names) -> None:
    """Curator seed once, then per round: labels through the topic, one refit, the gate, the daemon."""
    settings = Settings(database={"url": url})
    write_labels(db.engine, gold_seed, labeled_by="curator", origin="import")
    print(f"curator gold set: {len(gold_seed)} labels written once; daemon streaming at {args.stream_rate} msg/s",
          flush=True)
    for k, (records, n_flipped) in enumerate(rounds, 1):
        for r in records:
            producer.send(labels_topic, key=r["message_id"].encode(), value=json.dumps(r).encode())
        producer.flush()
        got, deadline = 0, time.monotonic() + 120
        while got < len(records) and time.monotonic() < deadline:
            got += consumer.poll_once(timeout_ms=1000).written
        t0 = time.monotonic()
        out = run_once(settings, cfg, engine=db.engine, progress=False)
        if not isinstance(out, Refit):
            raise RuntimeError(f"round {k}: no refit: {out.to_json()}")
        refit_s = time.monotonic() - t0
        decided_at = db_now(db)
        act = registry.active(db.engine, cfg.adapter_name)
        names[out.version] = f"r{k}"
        if out.action == "promoted":
            promoted.append(out.version)
            after, since = act["metrics"]["gold"][METRIC], act["status_changed_at"]
        else:
            after, since = out.scores.active[METRIC], decided_at
        serving, swap_s = serving_after(db, since, act["version"])
        result = Round(out, after, serving, act["version"])
        results.append(result)
        rows.append([k, got, n_flipped, result.gold, result.gold_slice_ignored, out.counts.train, out.action,
                     fmt(out.scores.candidate[METRIC]), fmt(result.active_before), fmt(after), f"{refit_s:.0f}",
                     names.get(serving, serving or "-"),
                     "-" if swap_s is None or out.action != "promoted" else f"{swap_s:.1f}",
                     "; ".join(out.decision.reasons)[:160]])
        print(c.table(HEADERS, rows[-1:]), flush=True)


def run(args) -> dict:
    print(c.machine(), flush=True)
    base = Path(args.base_model) if args.base_model else None
    cfg = TrainingSettings(
        base_model=base, labels=LABELS, precision=args.precision, lora_dropout=0.0, epochs=args.epochs,
        learning_rate=1e-3, warm_start=True, min_new_labels=args.round_size // 2, window_labels=args.round_size,
        replay_labels=args.round_size // 2, gold_fraction=0.1, val_fraction=0.05, gold_labelers=("curator",),
        promote_margin=0.0, recall_tolerance=0.02, max_length=64,
        adapters_dir=Path(tempfile.mkdtemp(prefix="sentistream-cl-")) / "adapters",
    )
    cfg = cfg.model_copy(update={"reports_dir": cfg.adapters_dir.parent / "reports"})
    gold_seed, rounds = plan(args, cfg.gold_fraction)
    dev = sst2("dev.tsv")
    broker = c.Broker()
    topics = broker.topics("cl")
    labels_topic = topics["input"].replace("-input-", "-labels-")
    broker.embedded.create_topic(labels_topic, 1)
    rows, promoted, results, names, t_all = [], [], [], {}, time.monotonic()
    with c.database() as url:
        db = c.Db(url)
        model = {"max_length": cfg.max_length, "follow_registry": True, "registry_poll_s": 300}
        if base:
            model["path"] = str(base)
        daemon = c.DaemonProcess(c.daemon_settings(broker, url, topics, model=model), "minilm")
        stop, produced = threading.Event(), []

        def stream():
            ids = itertools.takewhile(lambda _: not stop.is_set(), itertools.count())
            produced.append(broker.produce(topics["input"], (c.message("s", i, dev[i % len(dev)].text) for i in ids),
                                           args.stream_rate))

        producer_thread = threading.Thread(target=stream, daemon=True)
        producer_thread.start()
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, api_version=broker.api_version,
                              metadata_max_age_ms=1000)
        producer = KafkaProducer(**broker.client_kwargs, acks="all")
        try:
            consumer = LabelsConsumer(kafka, labels_topic, db.engine, LABELS, group_id=f"{labels_topic}-trainer")
            rounds_loop(args, cfg, db, url, producer, consumer, labels_topic, gold_seed, rounds, rows, results,
                        promoted, names)
            consumer.close()
            stop.set()
            producer_thread.join(timeout=60)
            n = produced[0]
            db.wait_count("s", n, timeout=600, proc=daemon.proc)
            report = daemon.stop()
        except BaseException:
            if daemon.proc.poll() is None:
                daemon.proc.kill()  # leave no daemon behind the dropped database
                daemon.proc.wait()
            raise
        finally:
            stop.set()
            producer_thread.join(timeout=60)
            producer.close()
        with db.engine.connect() as conn:
            n_rows, n_ids = conn.execute(text("select count(*), count(distinct message_id) from predictions")).one()
            ids_ok = conn.execute(text("select count(*) from predictions where message_id = any(:ids)"),
                                  {"ids": [f"s{i}" for i in range(n)]}).scalar_one() == n
        out_records = broker.appended(topics["output"])
        committed = broker.committed_equals_end(topics["group"], topics["input"])
        order = served_in_order(db)
        accuracy = stream_accuracy(db, dev, names)
        db.close()
    broker.close()

    print(c.table(HEADERS, rows, title=f"continuous learning, {args.rounds} rounds of {args.round_size} crowd "
                  f"labels (round {args.flip_round}: {args.flip_fraction:.0%} flipped, {args.flip_mode}), curator gold set of "
                  f"{len(gold_seed)}; daemon streaming at {args.stream_rate} msg/s"))
    print(c.table(["adapter version served", "rows", "daemon accuracy on streamed SST-2 dev sentences"],
                  accuracy, title="the daemon's predictions by adapter version"))
    afters = [r.active_after for r in results]
    checks = {
        "active gold metric never drops": all(b >= a for a, b in zip(afters, afters[1:])),
        "gold set fixed (same n; each 'before' = previous 'after')": (
            len({r.gold for r in results}) == 1
            and all(abs(r.active_before - p.active_after) < 1e-9 for p, r in zip(results, results[1:]))),
        "flipped round rejected": (results[args.flip_round - 1].action == "rejected"
                                   if args.flip_round <= len(results) else None),
        "every produced message written exactly once (rows, output records)": (
            n > 0 and n_rows == n_ids == n and ids_ok and out_records == n and committed),
        "predictions carry the versions promoted, in order, none rejected": (
            order == ([None] if order and order[0] is None else []) + promoted),
        "daemon served the active version after every round": all(r.serving == r.expected for r in results),
    }
    print(f"\nproduced {n} messages; rows {n_rows} (distinct ids {n_ids}); output records {out_records}; "
          f"offsets committed to the end: {committed}; daemon processed {report['processed']}, "
          f"peak RSS {report['peak_rss_mib']:.0f} MiB; versions served in offset order: "
          f"{[names.get(v, v) for v in order]} (rK: round K's adapter)")
    for name, ok in checks.items():
        print(f"check: {name}: {ok}")
    print(f"total {time.monotonic() - t_all:.0f} s; load average at end "
          + " / ".join(f"{x:.2f}" for x in os.getloadavg()))
    return {"rows": rows, "results": results, "checks": checks, "order": order, "promoted": promoted}


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--round-size", type=int, default=2000)
    ap.add_argument("--flip-round", type=int, default=4)
    ap.add_argument("--flip-fraction", type=float, default=0.3, help="of the round's labels")
    ap.add_argument("--flip-mode", choices=("uniform", "positive"), default="uniform",
                    help="which labels are flipped: any, or only positive ones (to negative)")
    ap.add_argument("--gold-size", type=int, default=1000, help="curator labels in the gold slice")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--stream-rate", type=float, default=10.0, help="messages/s produced to the daemon")
    ap.add_argument("--base-model", default=None, help="a local model directory; default: the offline MiniLM")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    ap.add_argument("--seed", type=int, default=7)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    checks = run(parse(argv))["checks"]
    return 0 if all(v is not False for v in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

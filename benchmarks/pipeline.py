"""How much the pipeline costs next to the model: six measures in one invocation.

(1) efficiency: the daemon's rate ÷ the raw classifier's; (2) the daemon against a naive
consume-classify-insert loop; (3) capacity with no model (daemon ÷ consume-only) and the Postgres
write path; (4) end-to-end latency at half the daemon's rate; (5) peak RSS; (6) the scale law
(benchmarks/scale.py).

    python -m benchmarks.pipeline            # full run, medians of 3 (about 10 minutes on 2 cores)
    python -m benchmarks.pipeline --quick    # smoke run: tiny sizes, 1 repetition
    python -m benchmarks.pipeline --sections 1,2,4,5   # a subset

Everything runs on this machine against the embedded Kafka-protocol broker and a throwaway
Postgres database; every ratio is computed from runs taken in this invocation, interleaved so that
a change in machine load hits both sides. Rates are steady state (see benchmarks/common.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from benchmarks import common as c
from benchmarks.raw_classifier import RawClassifier
from benchmarks.scale import HEADERS as SCALE_HEADERS
from benchmarks.scale import scale_law


@dataclass
class Sizes:
    reps: int = 3
    eff_messages: int = 2048
    naive_messages: int = 256
    capacity_messages: int = 20_000
    db_rows: int = 20_000
    latency_seconds: float = 20.0
    scale_tokens: tuple[int, ...] = (16, 64, 256)
    scale_batches: tuple[int, ...] = (1, 8, 32, 128)
    # Least messages per run (and at least 4 batches): section 6 with 3 reps in ~15 minutes on 2 cores.
    scale_min_messages: dict[int, int] = field(default_factory=lambda: {16: 256, 64: 128, 256: 48})


QUICK = Sizes(reps=1, eff_messages=96, naive_messages=24, capacity_messages=600, db_rows=600,
              latency_seconds=3.0, scale_min_messages={16: 16, 64: 16, 256: 8})
BATCH = 32
# How long the latency run's plain consumer may trail the daemon's last write before it is stopped.
WATCHER_GRACE_S = 30.0
# The baseline's best setting here: with torch's default (2 threads) its main-thread inference
# collapses to ~1-3 msg/s whenever other jobs load the 2 cores (OpenMP barriers); 1 thread does not.
NAIVE_TORCH_THREADS = 1


@dataclass
class Row:
    section: str
    metric: str
    value: str
    target: str = ""
    met: str = ""
    runs: str = ""


def naive_rate(broker: c.Broker, db: c.Db, db_url: str, texts: list[str], prefix: str) -> float:
    topics = broker.topics("naive")
    broker.produce(topics["input"], (c.message(prefix, i, t) for i, t in enumerate(texts)))
    libpq = db_url.replace("postgresql+psycopg://", "postgresql://")
    subprocess.run([sys.executable, "-m", "benchmarks.naive_loop", "--bootstrap", broker.bootstrap_servers,
                    "--topic", topics["input"], "--db-url", libpq, "--count", str(len(texts)),
                    "--api-version", broker.api_version, "--torch-threads", str(NAIVE_TORCH_THREADS)],
                   check=True, cwd=c.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return db.steady_rate(prefix, table="naive_predictions")


def model_sections(sz: Sizes, broker: c.Broker, db: c.Db, db_url: str, sections: set[str]) -> list[Row]:
    """(1) efficiency, (2) naive loop, (4) latency, (5) peak RSS: one MiniLM daemon process."""
    from models.loading import load_classifier
    from schemas.settings import ModelSettings

    texts = c.load_texts(sz.eff_messages)
    raw = RawClassifier(load_classifier(ModelSettings()), texts[:BATCH])
    topics = broker.topics("model")
    daemon = c.DaemonProcess(c.daemon_settings(broker, db_url, topics, max_size=BATCH))
    raws, ours, naives, expected = [], [], [], 0
    try:
        for rep in range(sz.reps):
            if sections & {"1", "2"}:
                raws.append(raw.rate(texts, BATCH)[0])
                prefix = f"eff{rep}-"
                broker.produce(topics["input"], (c.message(prefix, i, t) for i, t in enumerate(texts)))
                produced = time.time()
                expected += db.wait_count(prefix, len(texts), timeout=600, proc=daemon.proc)
                ours.append(db.steady_rate(prefix, after=produced))
            if "2" in sections:
                naives.append(naive_rate(broker, db, db_url, texts[:sz.naive_messages], f"naive{rep}-"))
        rows: list[Row] = []
        if sections & {"1", "2"}:
            ratios = [o / r for o, r in zip(ours, raws)]
            rows += [
                Row("1", "raw classifier, in-process (msg/s)", f"{c.median(raws):.1f}", runs=c.fmt_runs(raws)),
                Row("1", "daemon end-to-end (msg/s)", f"{c.median(ours):.1f}", runs=c.fmt_runs(ours)),
                Row("1", "pipeline efficiency (daemon ÷ raw)", f"{c.median(ratios):.3f}", "≥ 0.95",
                    _met(c.median(ratios) >= 0.95), c.fmt_runs(ratios, 3)),
            ]
        if "2" in sections:
            ratios = [o / n for o, n in zip(ours, naives)]
            rows += [
                Row("2", "naive loop (msg/s)", f"{c.median(naives):.1f}", runs=c.fmt_runs(naives)),
                Row("2", "daemon ÷ naive loop", f"{c.median(ratios):.2f}×", "≥ 3×",
                    _met(c.median(ratios) >= 3), c.fmt_runs(ratios, 2)),
            ]
        if "4" in sections:
            capacity = c.median(ours) if ours else raw.rate(texts, BATCH)[0]
            rows += latency(sz, broker, db, topics, capacity * 0.5, daemon)
            expected += int(capacity * 0.5 * sz.latency_seconds) * sz.reps
    finally:
        raw.close()
        report = daemon.stop()
    out_records = broker.appended(topics["output"])
    committed = broker.committed_equals_end(topics["group"], topics["input"])
    rows.append(Row("1", "complete: rows / output records / offsets committed",
                    f"{db.scalar('select count(*) from predictions')} / {out_records} / {committed}",
                    f"{expected} / {expected} / True",
                    _met(out_records == expected and committed)))
    if "5" in sections:
        rows.append(Row("5", "daemon peak RSS during (1) and (4) (MiB)", f"{report['peak_rss_mib']:.0f}",
                        met="n/a (no GPU here)"))
    return rows


def latency(sz: Sizes, broker, db, topics, rate: float, daemon) -> list[Row]:
    p50s, p99s, b50s, b99s = [], [], [], []
    for rep in range(sz.reps):
        prefix = f"lat{rep}-"
        n = int(rate * sz.latency_seconds)
        texts = c.load_texts(n)
        # A plain consumer on the same stream: how much of the latency is the broker's delivery.
        floor: list[float] = []
        broker.ready.clear()
        stop = threading.Event()
        watcher = threading.Thread(target=lambda: floor.extend(broker.delivery_latencies(topics["input"], n, stop)),
                                   daemon=True)
        watcher.start()
        broker.ready.wait(60)
        broker.produce(topics["input"], (c.message(prefix, i, t) for i, t in enumerate(texts)), rate=rate)
        db.wait_count(prefix, n, timeout=300, proc=daemon.proc)
        # The plain consumer sees each record before the daemon writes it; a bound, never a hang.
        watcher.join(WATCHER_GRACE_S)
        stop.set()
        watcher.join(WATCHER_GRACE_S)
        lat = db.latencies_ms(prefix)
        p50s.append(float(np.percentile(lat, 50)))
        p99s.append(float(np.percentile(lat, 99)))
        if floor:
            b50s.append(float(np.percentile(floor, 50)))
            b99s.append(float(np.percentile(floor, 99)))
    rows = [
        Row("4", f"offered load (msg/s, 50% of daemon rate), {sz.latency_seconds:.0f} s per run", f"{rate:.1f}"),
        Row("4", "end-to-end latency p50 (ms)", f"{c.median(p50s):.0f}", runs=c.fmt_runs(p50s, 0)),
        Row("4", "end-to-end latency p99 (ms)", f"{c.median(p99s):.0f}", runs=c.fmt_runs(p99s, 0)),
    ]
    if b50s:
        rows += [
            Row("4", "broker delivery alone, plain consumer, p50 (ms)", f"{c.median(b50s):.0f}",
                runs=c.fmt_runs(b50s, 0)),
            Row("4", "broker delivery alone, plain consumer, p99 (ms)", f"{c.median(b99s):.0f}",
                runs=c.fmt_runs(b99s, 0)),
        ]
    return rows


def capacity_section(sz: Sizes, broker: c.Broker, db: c.Db, db_url: str) -> list[Row]:
    """(3) constant classifier: daemon capacity vs consume-only, and the Postgres write path."""
    texts = c.load_texts(sz.capacity_messages)
    consume, ours = [], []
    for rep in range(sz.reps):
        prefix = f"cap{rep}-"
        topics = broker.topics("capacity")
        broker.produce(topics["input"], (c.message(prefix, i, t) for i, t in enumerate(texts)))
        consume.append(broker.consume_rate(topics["input"], len(texts)))
        daemon = c.DaemonProcess(c.daemon_settings(broker, db_url, topics, max_size=BATCH), "constant")
        try:
            db.wait_count(prefix, len(texts), timeout=600, proc=daemon.proc)
        finally:
            daemon.stop()
        ours.append(db.steady_rate(prefix))
    ratios = [o / k for o, k in zip(ours, consume)]
    rows = [
        Row("3", "kafka-python consume-only (msg/s)", f"{c.median(consume):.0f}", runs=c.fmt_runs(consume, 0)),
        Row("3", "daemon, constant classifier (msg/s)", f"{c.median(ours):.0f}", runs=c.fmt_runs(ours, 0)),
        Row("3", "pipeline capacity (daemon ÷ consume-only)", f"{c.median(ratios):.3f}", "≥ 0.8",
            _met(c.median(ratios) >= 0.8), c.fmt_runs(ratios, 3)),
    ]
    return rows + db_write_path(sz, db_url)


def db_write_path(sz: Sizes, db_url: str) -> list[Row]:
    from benchmarks.dbwrite import copy_rate, sink_rate

    sink, copy_b, copy_all = [], [], []
    for rep in range(sz.reps):
        sink.append(sink_rate(db_url, f"dbs{rep}-", sz.db_rows, BATCH))
        copy_b.append(copy_rate(db_url, f"dbc{rep}-", sz.db_rows, BATCH))
        copy_all.append(copy_rate(db_url, f"dba{rep}-", sz.db_rows, sz.db_rows))
    return [
        Row("3", f"Postgres sink alone, batches of {BATCH} (rows/s)", f"{c.median(sink):.0f}",
            runs=c.fmt_runs(sink, 0)),
        Row("3", f"plain COPY, batches of {BATCH} (rows/s)", f"{c.median(copy_b):.0f}", runs=c.fmt_runs(copy_b, 0)),
        Row("3", "plain COPY, one transaction (rows/s)", f"{c.median(copy_all):.0f}", runs=c.fmt_runs(copy_all, 0)),
        Row("3", f"sink ÷ COPY (batches of {BATCH})", f"{c.median(sink) / c.median(copy_b):.2f}"),
    ]


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one repetition")
    ap.add_argument("--sections", default="1,2,3,4,5,6", help="comma-separated subset of 1..6")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per measure (default 3; quick 1)")
    ap.add_argument("--scale-messages", default=None,
                    help="(6) least messages per run at 16,64,256 tokens, e.g. 64,32,16 (default 256,128,48)")
    ap.add_argument("--eff-messages", type=int, default=None,
                    help="(1)/(2) messages per daemon run (default 2048): longer runs, less noise")
    args = ap.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.eff_messages:
        sizes.eff_messages = args.eff_messages
    if args.scale_messages:
        sizes.scale_min_messages = dict(zip(sizes.scale_tokens, map(int, args.scale_messages.split(","))))
    print(run(args.sections.split(","), sizes, args.reps))
    return 0


def run(sections: list[str], sz: Sizes, reps: int | None = None) -> str:
    if reps is not None:
        sz.reps = reps
    wanted = set(sections)
    header = (f"machine: {c.machine()}\ncommand: {' '.join([os.path.basename(sys.executable), *sys.argv])}\n"
              f"repetitions: {sz.reps} (medians; runs listed in order)")
    rows: list[Row] = []
    scale_rows: list[list[str]] = []
    broker = c.Broker()
    try:
        with c.database() as db_url:
            db = c.Db(db_url)
            try:
                if wanted & {"1", "2", "4", "5"}:
                    rows += model_sections(sz, broker, db, db_url, wanted)
                if "3" in wanted:
                    rows += capacity_section(sz, broker, db, db_url)
                if "6" in wanted:
                    scale_rows = scale_law(sz, broker, db, db_url)
            finally:
                db.close()
    finally:
        broker.close()
    rows.sort(key=lambda r: r.section)
    body = c.table(["#", "measure", "median", "target", "met", "runs"],
                   [[r.section, r.metric, r.value, r.target, r.met, r.runs] for r in rows]) if rows else ""
    if scale_rows:
        body += "\n" + c.table(SCALE_HEADERS, scale_rows, "6. scale law")
    load = os.getloadavg()
    return f"{header}\n{body}\n\nload average at end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"


if __name__ == "__main__":
    sys.exit(main())

"""Capacity: raw / sentistream / Quix Streams, one invocation, interleaved.

    make peers                                   # Quix Streams' own venv (.venv-quix)
    python -m benchmarks.capacity [--brokers mock,tansu] [--kinds constant,minilm] [--reps 3]
                                  [--messages 20000] [--model-messages 2048] [--batch N] [--load] [--floor]

For each broker and classifier kind, ``--reps`` rounds; each round runs the three in a rotated
order, on fresh topics (1 partition) and the same Postgres database:
- **raw**: the reference. ``constant``: a kafka-python consumer reading the same input (consume
  only). ``minilm``: the classifier alone in this process (benchmarks.raw_classifier).
- **sentistream**: the daemon as its own process (benchmarks/daemon_proc.py), its settings at
  their defaults but the broker, topics, database and the log level (and ``--batch`` if given); on the mock
  broker ``delivery=idempotent`` (no transactions there), on tansu the default, transactional.
- **quix**: benchmarks/peers/quix_app.py, the same job as a Quix Streams application.

A run is timed from the moment the process is ready (sentistream: it owns the partition; Quix: its
first message arrived) until the group's committed offset reaches the end of the input, polled
every 20 ms: the messages were produced before, so this is the rate of the whole job, the last
commit included, for both. The raw consume-only rate is steady state (the first poll excluded). Each sentistream run is checked complete: one row per message, every message's output
record, the group's offsets at the end of the input. On tansu, a latency run follows: the daemon
fed at half its median rate (``--latency-seconds``). ``--load`` runs a busy process on every core
throughout (the "both cores loaded" case). ``--floor`` adds, for the constant classifier, the
least a kafka-python + Postgres pipeline does per message (benchmarks.floor) in the same rounds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np
from kafka import KafkaConsumer, TopicPartition

from benchmarks import common as c
from benchmarks.floor import floor_rate
from benchmarks.raw_classifier import RawClassifier
from schemas.settings import BatchSettings

PEER_PYTHON = c.REPO / ".venv-quix" / "bin" / "python"
PEERS = ("raw", "sentistream", "quix")
# --floor, constant classifier only: benchmarks.floor's serial loop, four ways.
FLOORS = {"floor": {}, "floor-no-db": {"database": False}, "floor-librdkafka": {"producer": "librdkafka"},
          "floor-librdkafka-no-db": {"producer": "librdkafka", "database": False}}


@dataclass
class Cell:
    rates: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PEERS})
    complete: list[str] = field(default_factory=list)
    latency: list[str] | None = None


class PeerProcess(c.DaemonProcess):
    """The Quix application in its own venv; ``stop()`` sends SIGTERM and waits (no report)."""

    def __init__(self, settings: dict, kind: str) -> None:
        if not PEER_PYTHON.exists():
            raise SystemExit(f"{PEER_PYTHON} is missing: run 'make peers' first")
        super().__init__(settings, kind, module="benchmarks.peers.quix_app", python=str(PEER_PYTHON))

    def stop(self, timeout: float = 60) -> dict:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        return {}


def _busy() -> None:
    while True:
        pass


def wait_committed(broker: c.Broker, group: str, topic: str, end: int, proc: subprocess.Popen,
                   timeout: float = 1800) -> None:
    """Until ``group`` has committed ``end`` on partition 0 of ``topic``."""
    consumer = KafkaConsumer(**broker.client_kwargs, group_id=group, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    deadline = time.monotonic() + timeout
    try:
        while (consumer.committed(tp) or 0) < end:
            if proc.poll() is not None:
                raise RuntimeError(f"exited early with code {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"committed offset short of {end} after {timeout:g} s")
            time.sleep(0.02)
    finally:
        consumer.close()


def rate_until_committed(broker: c.Broker, proc: c.DaemonProcess, group: str, topic: str, n: int) -> float:
    """Messages per second from now (``proc`` has just said READY) until ``group`` has committed
    ``n`` on ``topic``; stops ``proc`` either way."""
    t0 = time.perf_counter()
    try:
        wait_committed(broker, group, topic, n, proc.proc)
        return n / (time.perf_counter() - t0)
    except RuntimeError as e:
        raise RuntimeError(f"{e}\n{proc.log_tail()}") from None
    finally:
        proc.stop()


def run_one(peer: str, kind: str, broker: c.Broker, db: c.Db, db_url: str, texts: list[str], prefix: str,
            batch: int, raw: RawClassifier | None) -> tuple[float, str | None]:
    """One run: (msg/s, the completeness line for sentistream runs)."""
    if peer == "raw" and raw is not None:
        return raw.rate(texts, batch)[0], None
    topics = broker.topics(f"{peer}-{kind}")
    broker.produce(topics["input"], (c.message(prefix, i, t) for i, t in enumerate(texts)))
    if peer in FLOORS:
        return floor_rate(broker, db_url, topics, len(texts), **FLOORS[peer]), None
    if peer == "raw":
        return broker.consume_rate(topics["input"], len(texts)), None
    settings = c.daemon_settings(broker, db_url, topics, max_size=batch)
    proc = c.DaemonProcess(settings, kind) if peer == "sentistream" else PeerProcess(settings, kind)
    group = topics["group"] + ("-quix" if peer == "quix" else "")
    rate = rate_until_committed(broker, proc, group, topics["input"], len(texts))
    if peer != "sentistream":
        return rate, None
    want = {f"{prefix}{i}".encode() for i in range(len(texts))}
    if broker.kind == "mock":
        # Its log keeps ~5 MB per partition: count what was appended (no transaction markers there).
        records = broker.appended(topics["output"])
        ids_ok, seen = records == len(texts), f"{records} output records appended"
    else:
        keys = broker.read_keys(topics["output"])
        ids_ok, seen = set(keys) == want, f"{len(keys)} output records ({len(set(keys))} ids)"
    committed = broker.committed_equals_end(topics["group"], topics["input"])
    rows = db.count(prefix)
    ok = rows == len(texts) and ids_ok and committed
    return rate, f"{rows} rows, {seen}, offsets at end: {committed} → {'complete' if ok else 'INCOMPLETE'}"


def latency(broker: c.Broker, db: c.Db, db_url: str, kind: str, rate: float, seconds: float,
            batch: int) -> list[str]:
    """sentistream alone, fed at ``rate`` msg/s for ``seconds``: p50 / p99 from a record's timestamp
    (when it was produced) to its row's write (the transaction that wrote it)."""
    texts = c.load_texts(max(1, int(rate * seconds)))
    prefix = f"lat-{broker.kind}-{kind}-"
    topics = broker.topics(f"lat-{kind}")
    proc = c.DaemonProcess(c.daemon_settings(broker, db_url, topics, max_size=batch), kind)
    try:
        broker.produce(topics["input"], (c.message(prefix, i, t) for i, t in enumerate(texts)), rate=rate)
    except BaseException:
        proc.stop()
        raise
    rate_until_committed(broker, proc, topics["group"], topics["input"], len(texts))
    ms = db.latencies_ms(prefix)
    return [broker.kind, kind, f"{rate:.0f}", str(len(ms)), f"{np.percentile(ms, 50):.0f}",
            f"{np.percentile(ms, 99):.0f}"]


def measure(brokers: list[str], kinds: list[str], reps: int, n_const: int, n_model: int, batch: int,
            latency_s: float, floor: bool = False) -> dict:
    out: dict[tuple[str, str], Cell] = {}
    raw = None
    if "minilm" in kinds:
        from models.loading import load_classifier
        from schemas.settings import ModelSettings

        raw = RawClassifier(load_classifier(ModelSettings()), ["warm up"] * batch)
    try:
        with c.database() as db_url:
            db = c.Db(db_url)
            for bk in brokers:
                broker = c.Broker(bk)
                try:
                    for kind in kinds:
                        cell = out[(bk, kind)] = Cell()
                        texts = c.load_texts(n_const if kind == "constant" else n_model)
                        peers = PEERS + (tuple(FLOORS) if floor and kind == "constant" else ())
                        for rep in range(reps):  # noqa: B007 - rep names the round
                            k = rep % len(peers)
                            for peer in peers[k:] + peers[:k]:
                                prefix = f"{bk}-{kind}-{peer}-{rep}-"
                                rate, complete = run_one(peer, kind, broker, db, db_url, texts, prefix, batch,
                                                         raw if kind == "minilm" else None)
                                cell.rates.setdefault(peer, []).append(rate)
                                if complete:
                                    cell.complete.append(complete)
                                print(f"{bk} {kind} {peer} rep {rep}: {rate:.1f} msg/s", file=sys.stderr, flush=True)
                        if latency_s and bk == "tansu":
                            half = c.median(cell.rates["sentistream"]) / 2
                            cell.latency = latency(broker, db, db_url, kind, half, latency_s, batch)
                finally:
                    broker.close()
            db.close()
    finally:
        if raw is not None:
            raw.close()
    return out


def report(out: dict, header: str) -> str:
    rows = []
    for (bk, kind), cell in out.items():
        r = cell.rates
        ratio = lambda a, b: [x / y for x, y in zip(r[a], r[b])]  # noqa: E731 - per round, same order
        raw_name = "consume-only" if kind == "constant" else "raw classifier"
        rows.append([bk, kind, f"{c.median(r['sentistream']):.1f}", f"{c.median(r['quix']):.1f}",
                     f"{c.median(r['raw']):.1f} ({raw_name})",
                     f"{c.median(ratio('sentistream', 'quix')):.2f}", f"{c.median(ratio('sentistream', 'raw')):.3f}",
                     "; ".join(f"{p} {c.fmt_runs(r[p], 0)}" for p in PEERS)])
    table = c.table(["broker", "classifier", "sentistream msg/s", "Quix msg/s", "raw msg/s", "÷ Quix", "÷ raw",
                     "runs, in round order"], rows)
    floors = [[bk, kind, name, f"{c.median(cell.rates[name]):.0f}",
               f"{c.median([s / f for s, f in zip(cell.rates['sentistream'], cell.rates[name])]):.2f}",
               c.fmt_runs(cell.rates[name], 0)]
              for (bk, kind), cell in out.items() for name in FLOORS if name in cell.rates]
    if floors:
        table += "\n\nThe floor (benchmarks.floor), same rounds:\n"
        table += c.table(["broker", "classifier", "loop", "msg/s", "sentistream ÷ it", "runs"], floors)
    lat = [cell.latency for cell in out.values() if cell.latency]
    if lat:
        table += "\n\nsentistream end-to-end latency at half its median rate (record timestamp → row written):\n"
        table += c.table(["broker", "classifier", "msg/s", "messages", "p50 ms", "p99 ms"], lat)
    checks = "\n".join(f"- {bk} {kind}: {line}" for (bk, kind), cell in out.items() for line in cell.complete)
    load = os.getloadavg()
    return (f"{header}\n{table}\n\nsentistream runs checked:\n{checks}\n\n"
            f"load average at end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", default="mock,tansu")
    ap.add_argument("--kinds", default="constant,minilm")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20_000, help="per run, constant classifier")
    ap.add_argument("--model-messages", type=int, default=2048, help="per run, with the model")
    ap.add_argument("--batch", type=int, default=BatchSettings().max_size,
                    help="batch.max_size of both, and the raw classifier's batch (default: the daemon's)")
    ap.add_argument("--latency-seconds", type=float, default=20.0,
                    help="on tansu, the latency run's length at half the measured rate (0: none)")
    ap.add_argument("--load", action="store_true", help="a busy process on every core throughout")
    ap.add_argument("--floor", action="store_true",
                    help="constant classifier: also benchmarks.floor's loops (kafka-python or librdkafka producer, with or without the database)")
    args = ap.parse_args(argv)
    hogs = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(os.cpu_count() or 1)] if args.load else []
    for h in hogs:
        h.start()
    try:
        header = (f"machine: {c.machine()}{' (plus a busy process per core)' if hogs else ''}\n"
                  f"command: python -m benchmarks.capacity {' '.join(argv if argv is not None else sys.argv[1:])}\n"
                  f"started: {time.strftime('%Y-%m-%d %H:%M:%S')}")
        out = measure(args.brokers.split(","), args.kinds.split(","), args.reps, args.messages,
                      args.model_messages, args.batch, args.latency_seconds, args.floor)
    finally:
        for h in hogs:
            h.terminate()
    print(report(out, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())

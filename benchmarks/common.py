"""Shared pieces of the benchmarks: services, texts, producing, timing from Postgres, tables.

Every throughput here is a *steady-state* rate read back from the database: rows carry
``written_at`` (Postgres ``now()``, i.e. the start of the transaction that wrote them), so the
rows of one write share one timestamp. A run's rate is the number of rows written after its first
write divided by the time from its first write to its last one; start-up and the first (warm-up)
batch are excluded on both sides of every ratio.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from daemon.embedded_broker import MOCK_FETCH_WAIT_MS
from models.base import BatchResult

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("SENTISTREAM_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DATA_DIR = Path(os.environ.get("SENTISTREAM_DATA_DIR", REPO.parent / "shared" / "data"))
FALLBACK_TEXTS = [
    "the film was a delight from start to finish",
    "a dull , lifeless and utterly forgettable sequel",
    "great acting but the plot makes no sense at all",
    "i would happily watch it again tomorrow",
    "not worth the price of the ticket",
]


class ConstantClassifier:
    """No model: fixed probabilities, so what is measured is the pipeline alone."""

    labels = ("negative", "positive")
    model_version = "constant"

    def classify(self, texts: Sequence[str]) -> BatchResult:
        probs = np.tile(np.array([[0.25, 0.75]], dtype=np.float32), (len(texts), 1))
        return BatchResult(probs=probs, adapter_versions=(None,) * len(texts))


# Texts
def load_texts(limit: int) -> list[str]:
    """SST-2 training sentences (real review text); a small built-in list when the data is absent."""
    path = DATA_DIR / "sst2" / "train.tsv"
    if not path.is_file():
        return [FALLBACK_TEXTS[i % len(FALLBACK_TEXTS)] + f" #{i}" for i in range(limit)]
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row["sentence"].strip():
                out.append(row["sentence"].strip())
            if len(out) == limit:
                break
    return out


def texts_of_tokens(tokenizer, n_tokens: int, count: int) -> list[str]:
    """``count`` distinct texts of about ``n_tokens`` tokens each ([CLS] and [SEP] included)."""
    pool = load_texts(4000)
    ids = [t for s in pool for t in tokenizer(s, add_special_tokens=False)["input_ids"]]
    body = n_tokens - 2
    out = []
    for i in range(count):
        start = (i * 7919) % max(1, len(ids) - body)
        out.append(tokenizer.decode(ids[start:start + body]))
    return out


def message(prefix: str, i: int, text_: str) -> tuple[bytes, bytes]:
    mid = f"{prefix}{i}"
    return mid.encode(), orjson.dumps({"id": mid, "text": text_, "source": "bench"})


# Broker
class Broker:
    """A broker of the benchmark's own. ``mock``: the embedded librdkafka mock cluster (in this
    process, native threads: no GIL contention; no transactions, so the daemon runs idempotent
    delivery). ``tansu``: a real broker process (daemon.tansu_broker), the daemon at its default
    transactional delivery, kafka-python negotiating the API version."""

    def __init__(self, kind: str = "mock") -> None:
        self.kind = kind
        self.embedded = self.tansu = None
        if kind == "mock":
            from daemon.embedded_broker import API_VERSION, EmbeddedBroker

            self.embedded = EmbeddedBroker()
            self.bootstrap_servers = self.embedded.bootstrap_servers
            self.api_version: str | None = API_VERSION
        else:
            from daemon.tansu_broker import TansuBroker

            self.tansu = TansuBroker()
            self.bootstrap_servers = self.tansu.bootstrap_servers
            self.api_version = None
        self.client_kwargs: dict = {"bootstrap_servers": self.bootstrap_servers}
        if self.api_version:
            self.client_kwargs["api_version"] = tuple(int(p) for p in self.api_version.split("."))
        self.ready = threading.Event()

    def create_topic(self, name: str, partitions: int) -> None:
        (self.embedded or self.tansu).create_topic(name, partitions)

    def topics(self, tag: str, partitions: int = 1) -> dict[str, str]:
        suffix = uuid.uuid4().hex[:6]
        t = {k: f"bench-{tag}-{k}-{suffix}" for k in ("input", "output", "dlq")}
        self.create_topic(t["input"], partitions)
        self.create_topic(t["output"], partitions)
        self.create_topic(t["dlq"], 1)
        t["group"] = f"bench-{tag}-{suffix}"
        return t

    def kafka_settings(self) -> dict:
        """The daemon's kafka settings for this broker (beside the topics)."""
        if self.kind == "mock":
            return {"bootstrap_servers": self.bootstrap_servers, "api_version": self.api_version,
                    "delivery": "idempotent", "fetch_max_wait_ms": MOCK_FETCH_WAIT_MS}
        return {"bootstrap_servers": self.bootstrap_servers}

    def produce(self, topic: str, records: Iterable[tuple[bytes, bytes]], rate: float | None = None) -> int:
        """Send records; with ``rate`` (messages/s) paced evenly, else as fast as possible."""
        p = KafkaProducer(**self.client_kwargs, acks="all", linger_ms=5 if rate is None else 0)
        n, t0 = 0, time.monotonic()
        for key, value in records:
            if rate is not None:
                delay = t0 + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            p.send(topic, key=key, value=value)
            n += 1
        p.flush()
        p.close()
        return n

    def consume_rate(self, topic: str, expect: int) -> float:
        """Raw kafka-python consume-only rate (records/s) over a whole topic, steady state."""
        c = KafkaConsumer(topic, **self.client_kwargs, group_id=None, auto_offset_reset="earliest",
                          enable_auto_commit=False, isolation_level="read_committed")
        n, first_n, t_first = 0, 0, None
        while n < expect:
            got = sum(len(r) for r in c.poll(timeout_ms=1000).values())
            if got and t_first is None:
                t_first, first_n = time.perf_counter(), got
            n += got
        rate = (n - first_n) / (time.perf_counter() - t_first)
        c.close()
        return rate

    def delivery_latencies(self, topic: str, expect: int, stop: threading.Event) -> list[float]:
        """Record timestamp → kafka-python consumer delivery (ms) for the next ``expect`` records,
        with the daemon consumer's fetch settings: the broker's part of the end-to-end latency.
        Ends early when ``stop`` is set, with what it has seen."""
        c = KafkaConsumer(topic, **self.client_kwargs, group_id=None, auto_offset_reset="latest",
                          enable_auto_commit=False, isolation_level="read_committed",
                          fetch_max_wait_ms=MOCK_FETCH_WAIT_MS)
        while not c.assignment():
            c.poll(timeout_ms=100)
        c.seek_to_end()
        for tp in c.assignment():
            c.position(tp)  # resolve "end" now, before the producer starts
        self.ready.set()
        out: list[float] = []
        while len(out) < expect and not stop.is_set():
            for records in c.poll(timeout_ms=100).values():
                now = time.time() * 1000
                out += [now - r.timestamp for r in records]
        c.close()
        return out

    def appended(self, topic: str) -> int:
        """Records ever appended to ``topic`` (sum of end offsets; no transaction markers in
        idempotent delivery). Not a read-back: the mock cluster keeps only ~5 MB per partition
        and drops the oldest records beyond that."""
        return sum(self.end_offsets(topic).values())

    def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        """From a fetch's high watermark: tansu's ListOffsets LATEST falls short of the end."""
        c = KafkaConsumer(**self.client_kwargs, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100)
        parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
        c.assign(parts)
        for tp in parts:
            c.seek(tp, 0)
        while any(c.highwater(tp) is None for tp in parts):
            c.poll(timeout_ms=100, max_records=1)
        ends = {tp: c.highwater(tp) for tp in parts}
        c.close()
        return ends

    def read_keys(self, topic: str, idle_s: float = 2.0) -> list[bytes]:
        """Every record's key in ``topic`` (read_committed), read until ``idle_s`` passes without one."""
        c = KafkaConsumer(topic, **self.client_kwargs, group_id=None, auto_offset_reset="earliest",
                          enable_auto_commit=False, isolation_level="read_committed")
        keys: list[bytes] = []
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            for records in c.poll(timeout_ms=200).values():
                keys += [r.key for r in records]
                last = time.monotonic()
        c.close()
        return keys

    def committed_equals_end(self, group: str, topic: str) -> bool:
        c = KafkaConsumer(**self.client_kwargs, group_id=group, enable_auto_commit=False)
        ends = self.end_offsets(topic)
        ok = all(c.committed(tp) == o for tp, o in ends.items())
        c.close()
        return ok

    def close(self) -> None:
        (self.embedded or self.tansu).close()


# Database
@contextmanager
def database(migrate: bool = True):
    """A fresh (migrated) Postgres database for one benchmark invocation, dropped afterwards."""
    from schemas.db import upgrade

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"sentistream_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Db:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def scalar(self, sql: str, **params):
        with self.engine.connect() as c:
            return c.execute(text(sql), params).scalar_one()

    def count(self, prefix: str, table: str = "predictions") -> int:
        return self.scalar(f"select count(*) from {table} where message_id like :p", p=prefix + "%")

    def wait_count(self, prefix: str, expect: int, timeout: float, table: str = "predictions",
                   proc: subprocess.Popen | None = None, stall_s: float = 120) -> int:
        """Wait for ``expect`` rows; fail when ``timeout`` passes or no row arrives for ``stall_s``."""
        end = time.monotonic() + timeout
        last_n, last_change = -1, time.monotonic()
        while time.monotonic() < end:
            n = self.count(prefix, table)
            if n >= expect:
                return n
            if n != last_n:
                last_n, last_change = n, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                raise TimeoutError(f"{prefix}: stalled at {n} of {expect} rows for {stall_s:.0f}s")
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"daemon exited early with code {proc.returncode}")
            time.sleep(0.5)
        raise TimeoutError(f"{prefix}: only {self.count(prefix, table)} of {expect} rows after {timeout:.0f}s")

    def write_groups(self, prefix: str, table: str = "predictions", after: float | None = None):
        """(written_at epoch, rows) per write, in time order."""
        sql = (f"select extract(epoch from written_at)::float8, count(*) from {table} "
               "where message_id like :p group by written_at order by written_at")
        with self.engine.connect() as c:
            groups = [(float(t), int(n)) for t, n in c.execute(text(sql), {"p": prefix + "%"})]
        return [g for g in groups if after is None or g[0] >= after]

    def steady_rate(self, prefix: str, table: str = "predictions", after: float | None = None) -> float:
        """Rows per second after the first write (see module docstring)."""
        groups = self.write_groups(prefix, table, after)
        if len(groups) < 2:
            raise RuntimeError(f"{prefix}: {len(groups)} writes, need at least 2 to time a rate")
        return sum(n for _, n in groups[1:]) / (groups[-1][0] - groups[0][0])

    def latencies_ms(self, prefix: str) -> np.ndarray:
        sql = ("select extract(epoch from written_at - received_at) * 1000 from predictions "
               "where message_id like :p")
        with self.engine.connect() as c:
            return np.array([float(x) for x in c.execute(text(sql), {"p": prefix + "%"}).scalars()])

    def close(self) -> None:
        self.engine.dispose()


# The daemon, as its own process (as `sentistream run` would be)
def daemon_settings(broker: Broker, db_url: str, topics: dict[str, str], *, max_size: int = 32,
                    max_wait_ms: int = 50, max_length: int = 128, **extra) -> dict:
    return {
        "kafka": broker.kafka_settings() | {
            "input_topics": [topics["input"]], "output_topic": topics["output"],
            "dead_letter_topic": topics["dlq"], "group_id": topics["group"],
            "transactional_id": topics["group"] + "-tx"} | extra.pop("kafka", {}),
        "database": {"url": db_url},
        "batch": {"max_size": max_size, "max_wait_ms": max_wait_ms} | extra.pop("batch", {}),
        "model": {"max_length": max_length},
        "observability": {"http_port": 0, "log_level": "WARNING", "log_format": "json"},
    } | extra


class DaemonProcess:
    """``benchmarks/daemon_proc.py`` in a subprocess; ``stop()`` returns its report (peak RSS).
    ``module`` and ``python``: another program taking the same arguments (the peers)."""

    def __init__(self, settings: dict, classifier: str = "minilm", *, module: str = "benchmarks.daemon_proc",
                 python: str = sys.executable) -> None:
        cmd = [python, "-m", module, json.dumps(settings), classifier]
        # stderr to a file: a full pipe would block the daemon's logging.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=REPO)
        seen = ""
        for line in self.proc.stdout:  # libraries may print before READY
            if line.startswith("READY"):
                break
            seen += line
        else:
            self.proc.kill()
            raise RuntimeError(f"{module} did not start: {seen[-2000:]}{self.log_tail()}")

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read()[-3000:]

    def profile(self, out: Path, seconds: int, fmt: str = "raw") -> subprocess.Popen:
        """Sample the daemon with py-spy (all threads, idle ones excluded) for ``seconds``."""
        return subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(self.proc.pid),
                                 "--threads", "--rate", "100", "--duration", str(seconds), "--format", fmt,
                                 "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self, timeout: float = 120) -> dict:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.log_tail()}")
        self.log.close()
        return json.loads(out.strip().splitlines()[-1])


# Reporting
def timed_classify(clf, calls: Sequence[Sequence[str]]) -> tuple[float, np.ndarray]:
    """Classify ``calls`` one after another: (messages per second, probabilities in order)."""
    t0 = time.perf_counter()
    probs = [clf.classify(c).probs for c in calls]
    return sum(map(len, calls)) / (time.perf_counter() - t0), np.concatenate(probs)


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def fmt_runs(xs: Sequence[float], digits: int = 1) -> str:
    return " / ".join(f"{x:.{digits}f}" for x in xs)


def table(headers: Sequence[str], rows: Sequence[Sequence], title: str | None = None) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    out = ([f"\n### {title}\n"] if title else []) + [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(r) for r in cells])


def machine() -> str:
    import torch

    load = os.getloadavg()
    return (f"{platform.node()}: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), no GPU in use; "
            f"load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")

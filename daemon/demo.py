"""`sentistream demo`: the real daemon, offline, on the production defaults.

An embedded Kafka-protocol broker, SQLite, a replay producer streaming SST-2 dev sentences (when the
``data_dir`` setting, SENTISTREAM_DATA_DIR, holds them) or the bundled sample, and the best offline
model the project ships. Ends with a summary of what was classified and where it went.

The broker is tansu (a real broker, as a child process) and the daemon runs its default
``kafka.delivery=transactional``. ``--broker mock`` uses librdkafka's mock cluster instead: it has no
transactions, so the daemon runs ``idempotent`` there.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from daemon.app import Daemon
from daemon.embedded_broker import API_VERSION, MOCK_FETCH_WAIT_MS, EmbeddedBroker
from daemon.errors import DaemonError
from daemon.tansu_broker import TansuBroker
from schemas.db import upgrade
from schemas.settings import Settings

SAMPLE = Path(__file__).parent / "sample" / "messages.jsonl"
SST2_LABELS = ("negative", "positive")
DEMO_PRESET = "minilm-lora-sst2"
# A few poison messages show the dead-letter path.
POISON = [b"\xff\xfe\x00 not utf-8", b'{"id": "broken", "text": ', b'{"id": "no-text"}', b'{"id": "blank", "text": "  "}']
# tansu holds every JoinGroup for session_timeout_ms / 2, so the default 30 s session would keep the
# first assignment waiting 15 s; with 6 s it waits 3 s, and a replica stalled by a busy machine
# still keeps its membership.
TANSU_SESSION_TIMEOUT_MS = 6_000
# Longest wait for the daemon's first partition assignment before the clock starts.
ASSIGN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class DemoMessages:
    values: list[bytes]
    origin: str  # where they came from, for the first line printed
    gold: dict[str, str]  # message id -> SST-2 gold label; empty for the bundled sample


def load_messages(limit: int, data_dir: Path | None) -> DemoMessages:
    dev = data_dir / "sst2" / "dev.tsv" if data_dir is not None else None
    if dev is not None and dev.is_file():
        with dev.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:limit]
        gold = {f"sst2-dev-{i}": SST2_LABELS[int(r["label"])] for i, r in enumerate(rows)}
        values = [json.dumps({"id": mid, "text": r["sentence"], "source": "sst2-dev", "meta": {"gold": label}}).encode()
                  for (mid, label), r in zip(gold.items(), rows, strict=True)]
        return DemoMessages(values, f"{dev} ({len(values)} sentences)", gold)
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    values = [lines[i % len(lines)].encode() for i in range(min(limit, len(lines)))]
    return DemoMessages(values, f"{SAMPLE} ({len(values)} messages)", {})


def start_broker(kind: str) -> TansuBroker | EmbeddedBroker:
    """The embedded broker; a broker that cannot start is one DaemonError line."""
    if kind == "mock":
        try:
            return EmbeddedBroker()
        except RuntimeError as e:
            raise DaemonError(f"the demo's mock broker did not start: {e}") from None
    try:
        return TansuBroker()
    except DaemonError as e:
        raise DaemonError(f"the demo's tansu broker did not start: {e} "
                          "(`sentistream demo --broker mock` runs the demo on librdkafka's mock broker)") from None


def kafka_settings(kind: str, bootstrap: str, topics: dict) -> dict:
    """The daemon's kafka.* for the demo: production defaults on tansu; on the mock, what it lacks."""
    kafka = {"bootstrap_servers": bootstrap, "input_topics": (topics["input"],), "output_topic": topics["output"],
             "dead_letter_topic": topics["dlq"], "group_id": "demo"}
    if kind == "tansu":
        return kafka | {"session_timeout_ms": TANSU_SESSION_TIMEOUT_MS}
    # The mock has no transactions, cannot be probed for its version, and holds every empty fetch
    # for the whole fetch_max_wait_ms.
    return kafka | {"delivery": "idempotent", "api_version": API_VERSION, "fetch_max_wait_ms": MOCK_FETCH_WAIT_MS}


def _produce(bootstrap: str, topic: str, values: list[bytes], api_version: str | None) -> None:
    from kafka import KafkaProducer

    # tansu: kafka-python negotiates the version (a pinned one breaks its InitProducerId).
    pin = {"api_version": tuple(map(int, api_version.split(".")))} if api_version else {}
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **pin)
    for i, v in enumerate(values):
        p.send(topic, key=f"demo-{i}".encode(), value=v)
    p.flush()
    p.close()


def _await_assignment(daemon: Daemon, runner: threading.Thread) -> None:
    """Until the daemon holds its partitions, so the throughput is the pipeline's, not the group join's."""
    deadline = time.monotonic() + ASSIGN_TIMEOUT_S
    while not daemon.is_ready() and runner.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)


def run_demo(messages: int = 1000, workdir: Path = Path("var/demo"), broker_kind: str = "tansu",
             data_dir: Path | None = None) -> int:
    """``data_dir``: the datasets folder (setting ``data_dir``); SST-2 dev sentences when it holds them."""
    # The broker first: one that cannot start fails the demo before the model loads.
    with start_broker(broker_kind) as broker:
        return _run(broker, broker_kind, load_messages(messages, data_dir), workdir)


def _run(broker: TansuBroker | EmbeddedBroker, kind: str, demo: DemoMessages, workdir: Path) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = (workdir / "demo.db").resolve()
    db_path.unlink(missing_ok=True)
    db_url = f"sqlite:///{db_path}"
    upgrade(db_url)
    values = demo.values + POISON
    topics = {"input": "reviews", "output": "predictions", "dlq": "dead-letters"}

    broker.create_topic(topics["input"], 3)
    broker.create_topic(topics["output"], 3)
    broker.create_topic(topics["dlq"], 1)
    kafka = kafka_settings(kind, broker.bootstrap_servers, topics)
    settings = Settings(
        kafka=kafka,
        database={"url": db_url},
        # The best offline model the project ships: MiniLM + the SST-2 LoRA adapter.
        model={"preset": DEMO_PRESET},
        batch={"max_size": 64, "max_wait_ms": 50},
        observability={"http_port": 0, "log_level": "WARNING", "log_format": "console"},
    )
    print(f"sentistream demo: loading the model and streaming {len(values)} messages from {demo.origin} "
          f"through {kind} (delivery {settings.kafka.delivery})")
    daemon = Daemon(settings)
    runner = threading.Thread(target=daemon.run, name="daemon")
    runner.start()
    daemon.wait_started(60)
    _await_assignment(daemon, runner)
    t0 = time.monotonic()
    _produce(broker.bootstrap_servers, topics["input"], values, kafka.get("api_version"))
    engine = create_engine(db_url)
    done = 0
    while done < len(values) and time.monotonic() - t0 < 600 and runner.is_alive():
        time.sleep(0.2)
        with engine.connect() as c:
            done = c.execute(text("select (select count(*) from predictions) + (select count(*) from dead_letters)")).scalar_one()
    elapsed = time.monotonic() - t0
    daemon.stop()
    runner.join(60)
    print_summary(engine, daemon, len(values), elapsed, db_path, topics, broker.bootstrap_servers, demo.gold)
    engine.dispose()
    return 0 if done == len(values) else 1


def print_summary(engine, daemon: Daemon, sent: int, elapsed: float, db_path: Path, topics: dict, bootstrap: str,
                  gold: dict[str, str]) -> None:
    clf = daemon.worker.classifier
    with engine.connect() as c:
        labels = c.execute(text("select label, count(*) from predictions group by label order by 2 desc")).all()
        dead = c.execute(text("select error_kind, count(*) from dead_letters group by error_kind order by 2 desc")).all()
        rows = c.execute(text("select message_id, label, confidence, substr(text, 1, 60) from predictions "
                              "order by message_id limit 5")).all()
    n_pred = sum(n for _, n in labels)
    print("\n=== sentistream demo summary ===")
    print(f"model            {clf.model_version}  adapter {getattr(clf, 'adapter_version', None) or '(none)'}")
    print(f"messages         {sent} sent, {n_pred} classified, {sum(n for _, n in dead)} dead-lettered")
    print(f"throughput       {sent / elapsed:,.1f} msg/s end to end ({elapsed:.1f} s, produce → committed)")
    print("labels           " + ", ".join(f"{lab}: {n}" for lab, n in labels))
    print("dead letters     " + (", ".join(f"{k}: {n}" for k, n in dead) or "none"))
    accuracy = _gold_accuracy(engine, gold)
    if accuracy is not None:
        print(f"SST-2 dev        accuracy {accuracy:.3f} against the gold labels")
    print("sample rows")
    for mid, lab, conf, snippet in rows:
        print(f"  {mid:<14} {lab:<9} {conf:.2f}  {snippet}")
    print("where the data went")
    print(f"  database       {db_path} (tables predictions, dead_letters)")
    print(f"  output topic   {topics['output']} on {bootstrap} (embedded broker, gone after the demo)")
    print(f"  dead letters   {topics['dlq']} topic and the dead_letters table")
    print(f"  try            sqlite3 {db_path} \"select label, count(*) from predictions group by 1\"")


def _gold_accuracy(engine, gold: dict[str, str]) -> float | None:
    with engine.connect() as c:
        pairs = c.execute(text("select message_id, label from predictions where source = 'sst2-dev'")).all()
    if not pairs:
        return None
    hits = Counter(label == gold[mid] for mid, label in pairs)
    return hits[True] / len(pairs)

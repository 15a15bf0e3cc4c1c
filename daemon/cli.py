"""Subcommands the daemon package adds to ``sentistream``: run, classify, demo."""

from __future__ import annotations

import argparse
import signal
import sys
import time

import orjson


def _run(args: argparse.Namespace) -> int:
    from daemon.app import Daemon
    from daemon.logs import configure_logging
    from schemas.settings import load_settings

    settings = load_settings()
    configure_logging(settings.observability)
    daemon = Daemon(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: daemon.stop())
    return daemon.run()


def _classify(args: argparse.Namespace) -> int:
    from daemon.batch import Batch, Item
    from daemon.metrics import Metrics
    from daemon.worker import InferenceWorker
    from models.loading import load_classifier
    from schemas.messages import InboundMessage
    from schemas.settings import load_settings

    settings = load_settings()
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    worker = InferenceWorker(load_classifier(settings.model), settings.retry, Metrics(), 1)
    size = settings.batch.max_size
    now_ms = int(time.time() * 1000)
    out = sys.stdout.buffer
    for start in range(0, len(texts), size):
        chunk = texts[start:start + size]
        batch = Batch(items=[
            Item(InboundMessage(id=str(start + i), text=t), "cli", 0, start + i, now_ms, None, t.encode())
            for i, t in enumerate(chunk)
        ])
        worker.process(batch)
        for p, d in _in_order(batch):
            out.write(orjson.dumps(p.model_dump(mode="json")) if p else orjson.dumps({"error": d}))
            out.write(b"\n")
    out.flush()
    return 0


def _in_order(batch):
    errors = {d.message_id: f"{d.error_kind}: {d.error_text}" for d in batch.dead}
    for item, p in zip(batch.items, batch.predictions):
        yield p, errors.get(item.msg.id)


def _demo(args: argparse.Namespace) -> int:
    from daemon.demo import run_demo

    return run_demo(messages=args.messages)


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the streaming daemon (settings from SENTISTREAM_* / config file)")
    run.set_defaults(func=_run)
    cls = sub.add_parser("classify", help="classify texts from argv, or stdin one per line; prints JSON lines")
    cls.add_argument("texts", nargs="*")
    cls.set_defaults(func=_classify)
    demo = sub.add_parser("demo", help="offline demo: embedded broker, SQLite, replayed sample messages")
    demo.add_argument("--messages", type=int, default=1000, help="how many sample messages to stream")
    demo.set_defaults(func=_demo)

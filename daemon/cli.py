"""Subcommands the daemon package adds to ``sentistream``: run, classify, demo."""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator

import orjson

from schemas.errors import MessageError
from schemas.messages import InboundMessage, decode_message


def _run(args: argparse.Namespace) -> int:
    from daemon.lifecycle import run_daemon

    return run_daemon(args.settings)


def _classify(args: argparse.Namespace) -> int:
    from daemon.metrics import Metrics
    from daemon.worker import InferenceWorker
    from models.loading import load_classifier

    settings = args.settings
    try:
        worker = InferenceWorker(load_classifier(settings.model), settings.retry, Metrics(), 1)
        # Typed at a terminal: answer each line as it comes; piped: batches as the daemon makes them.
        size = 1 if not args.texts and sys.stdin.isatty() else settings.batch.max_size
        failed = 0
        unsupported: list[tuple[str, str]] = []
        for chunk in _chunks(_inputs(args.texts), size):
            rows = _classify_chunk(worker, chunk, settings.batch.max_text_chars)
            failed += sum("error" in r for r in rows)
            unsupported += [(r["message_id"], r["lang"]) for r in rows if r.get("lang_supported") is False]
            sys.stdout.buffer.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
            sys.stdout.buffer.flush()
        _warn_unsupported(unsupported, worker.classifier)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as filters do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
    return 1 if failed else 0


def _warn_unsupported(unsupported: list[tuple[str, str]], classifier, max_ids: int = 20) -> None:
    """One stderr line for the inputs in a language the model does not serve (ids and languages only)."""
    if not unsupported:
        return
    import structlog

    served = sorted(classifier.language_support.languages)
    structlog.get_logger("sentistream.classify").warning(
        "unsupported_language", count=len(unsupported), languages=dict(Counter(lang for _, lang in unsupported)),
        model_languages=served, message_ids=[i for i, _ in unsupported[:max_ids]],
        hint="classified all the same; for these languages use a spec that declares them "
             "(model.preset, model.spec_file)",
    )


def _inputs(texts: list[str]) -> Iterator[bytes]:
    """The arguments, else stdin's lines, as bytes; blank lines count, so ids stay line numbers."""
    if texts:
        return (os.fsencode(t) for t in texts)
    return (line.removesuffix(b"\n").removesuffix(b"\r") for line in sys.stdin.buffer)


def _chunks(inputs: Iterator[bytes], size: int) -> Iterator[list[tuple[int, bytes]]]:
    numbered = enumerate(inputs)
    while chunk := list(itertools.islice(numbered, size)):
        yield chunk


def _decode(index: int, raw: bytes, max_text_chars: int) -> InboundMessage | MessageError:
    """The daemon's decode stage on one input, its position as id. The text goes in a JSON object so
    that a line which looks like JSON is still classified as text."""
    try:
        value = orjson.dumps({"id": str(index), "text": raw.decode("utf-8")})
    except UnicodeDecodeError:
        value = raw  # decode_message names the first bad byte, as for a Kafka record
    try:
        return decode_message(value, topic="cli", partition=0, offset=index, key=None,
                              max_text_chars=max_text_chars)
    except MessageError as e:
        return e


def _classify_chunk(worker, chunk: list[tuple[int, bytes]], max_text_chars: int) -> list[dict]:
    """One output row per input, in order: a prediction, or ``{"message_id", "error"}``."""
    from daemon.batch import Batch, Item

    now_ms = int(time.time() * 1000)
    decoded = [(i, raw, _decode(i, raw, max_text_chars)) for i, raw in chunk]
    batch = Batch(items=[Item(m, "cli", 0, i, now_ms, None, raw)
                         for i, raw, m in decoded if isinstance(m, InboundMessage)])
    worker.process(batch)
    predictions = {item.msg.id: p for item, p in zip(batch.items, batch.predictions)}
    failures = {d.message_id: f"{d.error_kind}: {d.error_text}" for d in batch.dead}
    rows = []
    for i, _, m in decoded:
        if isinstance(m, MessageError):
            rows.append({"message_id": str(i), "error": f"{m.kind}: {m.detail}"})
        elif predictions[m.id] is None:
            rows.append({"message_id": m.id, "error": failures[m.id]})
        else:
            rows.append(predictions[m.id].prediction().model_dump(mode="json"))
    return rows


def _demo(args: argparse.Namespace) -> int:
    from daemon.demo import run_demo

    return run_demo(messages=args.messages, broker_kind=args.broker, data_dir=args.settings.data_dir)


_CLASSIFY_HELP = """\
Classify texts with the configured model (model.* settings, the shipped model by default) and
print one JSON line per input to stdout, in input order. The inputs are the TEXT arguments or,
without any, stdin one text per line; message_id is the input's 0-based position, blank lines
included. An input the daemon would dead-letter (empty or blank, longer than batch.max_text_chars,
not UTF-8) gets {"message_id": ..., "error": "<reason>: <detail>"} with the daemon's reason
(empty_text, oversized_text, undecodable_bytes, schema_violation); the other inputs are still
classified. Logs go to stderr."""

_CLASSIFY_EXIT = """\
exit status: 0 every input classified; 1 some inputs got an error line (every other input was
still classified and printed); 2 bad settings or arguments."""


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run", help="run the streaming daemon (settings from SENTISTREAM_* / config file)",
        description="Run the streaming daemon: consume kafka.input_topics, classify each message, write the "
        "predictions to Postgres (database.url) and kafka.output_topic, dead-letter what cannot be "
        "classified. Serves /metrics, /healthz and /readyz on observability.http_port. SIGTERM or SIGINT "
        "drains in-flight batches within shutdown_timeout_s.",
    )
    run.set_defaults(func=_run)
    cls = sub.add_parser("classify", help="classify texts from argv, or stdin one per line; prints JSON lines",
                         description=_CLASSIFY_HELP, epilog=_CLASSIFY_EXIT,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    cls.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify (default: stdin, one per line)")
    cls.set_defaults(func=_classify)
    demo = sub.add_parser(
        "demo", help="offline demo: embedded broker, SQLite, replayed sample messages",
        description="Offline demo of the whole pipeline on the production defaults: starts an embedded "
        "Kafka-protocol broker (tansu, a real broker, with transactional delivery), streams sample messages "
        "(SST-2 dev sentences when SENTISTREAM_DATA_DIR holds them) and a few malformed ones through the real "
        "daemon into SQLite (var/demo/demo.db), then prints a summary. Exit status: 0 every message "
        "classified or dead-lettered; 1 some were not; 2 the broker could not start.",
    )
    demo.add_argument("--messages", type=int, default=1000, help="how many sample messages to stream")
    demo.add_argument("--broker", choices=("tansu", "mock"), default="tansu",
                      help="tansu (default): real transactions, delivery=transactional; mock: librdkafka's "
                      "mock cluster from confluent-kafka, no transactions, so delivery=idempotent")
    demo.set_defaults(func=_demo)

"""``sentistream train``, ``labels``, ``adapters`` and ``trainer`` subcommands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import structlog

from schemas.errors import ConfigError

log = structlog.get_logger(__name__)


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for p in pairs:
        if "=" not in p:
            raise ConfigError(f"--set {p!r}: use KEY=VALUE, e.g. --set lora_r=8")
        k, v = p.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def training_settings(args: argparse.Namespace):
    """Settings' training section with ``--set`` overrides, validated like any setting.

    The CLI host read the settings and set up logging (stderr; stdout carries the results)."""
    from pydantic import ValidationError

    from schemas.settings import TrainingSettings

    settings = args.settings
    base = settings.training.model_dump()
    if getattr(args, "labels", None):
        base["labels"] = tuple(args.labels.split(","))
    try:
        return settings, TrainingSettings(**{**base, **_overrides(args.set or [])})
    except ValidationError as e:
        bad = "; ".join(f"training.{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        raise ConfigError(f"invalid --set: {bad}") from None


def _train_files(args: argparse.Namespace) -> int:
    from training.pipeline import train_from_files

    settings, cfg = training_settings(args)
    out = train_from_files(cfg, Path(args.train_file), Path(args.eval_file) if args.eval_file else None,
                           Path(args.out), Path(args.report) if args.report else None, settings.model.cache_dir)
    print(json.dumps(out, indent=2))
    return 0


def _train(args: argparse.Namespace) -> int:
    if args.train_file:
        return _train_files(args)
    from schemas.db import check_database

    settings, cfg = training_settings(args)
    check_database(settings.database)  # before the seconds the training imports take
    from training.service import run_once

    out = run_once(settings, cfg, force=args.force)
    print(json.dumps(out.to_json(), indent=2, default=str))
    return 0


def _engine(settings):
    """The database's engine, once it has answered and is at the current migration (else one line, exit 2)."""
    from schemas.db import check_database, database_engine

    check_database(settings.database)
    return database_engine(settings.database)


def _labels_import(args: argparse.Namespace) -> int:
    from training.labels import import_file
    from training.readers import tweeteval_labels

    settings, cfg = training_settings(args)
    labels = cfg.labels
    if not args.labels and Path(args.file).name.endswith("_text.txt"):
        labels = tweeteval_labels(Path(args.file)) or labels
    res = import_file(_engine(settings), Path(args.file), labels, labeled_by=args.labeled_by)
    for r in res.rejected:
        log.warning("label_rejected", file=args.file, line=r.line, reason=r.reason)
    print(json.dumps({"file": args.file, "written": res.written, "rejected": len(res.rejected)}))
    return 1 if res.rejected and not res.written else 0


def _adapters_list(args: argparse.Namespace) -> int:
    from training.registry import list_adapters

    settings, cfg = training_settings(args)
    rows = list_adapters(_engine(settings), None if args.all else cfg.adapter_name)
    pm = cfg.primary_metric
    print(f"{'version':<44} {'status':<9} {'kind':<6} {'gold ' + pm:>14} {'watermark':>9}  created")
    for r in rows:
        gold = (r["metrics"] or {}).get("gold") or {}
        score = f"{gold[pm]:.4f}" if pm in gold else "-"
        print(f"{r['version']:<44} {r['status']:<9} {r['kind']:<6} {score:>14} {r['label_watermark']:>9}  "
              f"{r['created_at']:%Y-%m-%d %H:%M:%S}")
        if args.verbose and r["reasons"]:
            print("    " + "; ".join(r["reasons"]))
    return 0


def _adapters_promote(args: argparse.Namespace) -> int:
    from training.registry import promote

    settings, cfg = training_settings(args)
    row = promote(_engine(settings), args.version, channel=cfg.notify_channel, reasons=["promoted by operator"])
    print(f"active: {row['version']} (previous: {row.get('previous')})")
    return 0


def _adapters_rollback(args: argparse.Namespace) -> int:
    from training.registry import rollback

    settings, cfg = training_settings(args)
    out = rollback(_engine(settings), cfg.adapter_name, channel=cfg.notify_channel)
    print(f"rolled back {out['name']}: {out['from']} -> {out['to']}")
    return 0


def _trainer(args: argparse.Namespace) -> int:
    from schemas.broker import check_broker
    from schemas.db import check_database

    settings, cfg = training_settings(args)
    check_database(settings.database)  # both before the seconds the training imports take
    if not args.no_consume:
        check_broker(settings.kafka)
    from training.service import serve

    return serve(settings, cfg, consume=not args.no_consume)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a training setting, e.g. --set lora_r=8 (repeatable)")
    p.add_argument("--labels", help="comma-separated label names (default: training.labels)")


def register(sub) -> None:
    t = sub.add_parser(
        "train", help="fit an adapter once (from the labels table, or from files)",
        description="Fit an adapter once. By default (or with --once): refit from the labels table at "
        "database.url when training.min_new_labels new labels arrived, score the candidate on the gold "
        "labels and promote it only if the gate passes; prints the outcome as JSON. With --train-file: "
        "fit on a labels file into --out and print a summary, without the database. Settings: training.*.",
    )
    _common(t)
    t.add_argument("--once", action="store_true", help="one refit from the labels table, then exit (for cron)")
    t.add_argument("--force", action="store_true", help="refit even without enough new labels")
    t.add_argument("--train-file", help="train from a labels file instead of the labels table")
    t.add_argument("--eval-file", help="with --train-file: a held-out labels file to report on")
    t.add_argument("--out", default="adapters/file-run", help="with --train-file: adapter output directory")
    t.add_argument("--report", help="with --train-file: report directory (default: <out>-report)")
    t.set_defaults(func=_train)

    lab = sub.add_parser("labels", help="labeled data", description="Manage the labels the trainer learns from.")
    lab = lab.add_subparsers(dest="labels_command", required=True)
    imp = lab.add_parser(
        "import", help="import a CSV/TSV/JSONL or TweetEval labels file into the labels table",
        description="Import a labels file (CSV/TSV with text and label columns, JSONL, or a TweetEval "
        "*_text.txt with its *_labels.txt) into the labels table at database.url. Prints a JSON count of "
        "written and rejected rows; each rejected row is logged (label_rejected) with its line and reason. "
        "Exits 1 when rows were rejected and none written.",
    )
    _common(imp)
    imp.add_argument("file")
    imp.add_argument("--labeled-by", default="import", help="labeler name for rows without a labeled_by column")
    imp.set_defaults(func=_labels_import)

    ad = sub.add_parser("adapters", help="adapter registry",
                        description="Inspect and steer the adapter registry the daemon serves from.")
    ad = ad.add_subparsers(dest="adapters_command", required=True)
    ls = ad.add_parser("list", help="adapters of training.adapter_name with status and gold metric",
                       description="List the registered versions of training.adapter_name (every name with "
                       "--all): status, kind, gold-set score on training.primary_metric, label watermark.")
    _common(ls)
    ls.add_argument("--all", action="store_true", help="every adapter name")
    ls.add_argument("-v", "--verbose", action="store_true", help="show gate reasons")
    ls.set_defaults(func=_adapters_list)
    pr = ad.add_parser("promote", help="make VERSION active (operator override of the gate)",
                       description="Make adapter VERSION the active one, overriding the gate; daemons "
                       "following the registry switch to it.")
    _common(pr)
    pr.add_argument("version")
    pr.set_defaults(func=_adapters_promote)
    rb = ad.add_parser("rollback", help="reject the active adapter and restore the previous one",
                       description="Reject the active version of training.adapter_name and make the "
                       "previously active one active again; daemons following the registry switch back.")
    _common(rb)
    rb.set_defaults(func=_adapters_rollback)

    tr = sub.add_parser(
        "trainer", help="long-running trainer: consume the labels topic, refit on an interval",
        description="Run the trainer service: consume training.labels_topic into the labels table and, every "
        "training.interval_s, refit as `train --once` does (gate included) until SIGTERM or SIGINT.",
    )
    _common(tr)
    tr.add_argument("--no-consume", action="store_true", help="do not read the labels topic (labels come by SQL)")
    tr.set_defaults(func=_trainer)

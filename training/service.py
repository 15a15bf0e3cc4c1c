"""One refit (``train --once``) and the long-running trainer loop.

A refit: labels since the watermark → dataset minus the gold set → fit → measure candidate and
active adapter on the same gold set → register → gate → promote (NOTIFY) or reject.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy.engine import Engine

from models.seed import ensure_shipped_adapter
from schemas.db import make_engine
from schemas.settings import Settings, TrainingSettings
from training import labels as label_store
from training import registry
from training.errors import TrainingError
from training.gate import decide
from training.metrics import compute_metrics
from training.pipeline import base_model_dir
from training.report import write_report
from training.splits import three_way
from training.trainer import evaluate_examples, fit

log = structlog.get_logger("training.service")


def adapter_sha256(path: Path) -> str:
    from models.checks import adapter_sha256 as sha

    return sha(path)


def evaluate_adapter(cfg: TrainingSettings, adapter_dir: Path, *example_sets,
                     sha256: str | None = None) -> list[dict]:
    """Metrics of a registered adapter on each set (today's gold set, the new labels), loaded once,
    by the daemon's loader (its checks, the registry's sha256); in fp32, as the candidate is measured."""
    from pydantic import ValidationError

    from models.loading import load_classifier
    from schemas.settings import ModelSettings

    try:
        model = ModelSettings(path=cfg.base_model, adapter_path=adapter_dir, adapter_sha256=sha256,
                              labels=cfg.labels, max_length=cfg.max_length, device=cfg.device, precision="fp32")
    except ValidationError as e:
        raise TrainingError(f"adapter {adapter_dir}: {e.errors()[0]['msg']}") from None
    clf = load_classifier(model)
    index = {n: i for i, n in enumerate(cfg.labels)}
    return [compute_metrics([index[e.label] for e in examples],
                            clf.classify([e.text for e in examples]).probs.argmax(1), cfg.labels)
            for examples in example_sets]


def window(train: list, cfg: TrainingSettings) -> list:
    """The newest ``window_labels`` examples plus a seeded random replay of older ones."""
    if not cfg.window_labels or len(train) <= cfg.window_labels:
        return train
    recent, older = train[-cfg.window_labels:], train[:-cfg.window_labels]
    rng = random.Random(cfg.seed)
    return rng.sample(older, min(cfg.replay_labels, len(older))) + recent


def run_once(settings: Settings, cfg: TrainingSettings, *, force: bool = False,
             engine: Engine | None = None, progress: bool = True) -> dict:
    engine = engine or make_engine(settings.database.url.get_secret_value())
    name = cfg.adapter_name
    ensure_shipped_adapter(engine, cfg)
    last = registry.latest(engine, name)
    watermark = last["label_watermark"] if last else 0
    new = label_store.count_since(engine, watermark)
    if new < cfg.min_new_labels and not force:
        log.info("trainer.skip", new_labels=new, min_new_labels=cfg.min_new_labels)
        return {"action": "skipped", "new_labels": new, "min_new_labels": cfg.min_new_labels}
    examples, wm = label_store.load_examples(engine, cfg.labels)
    train, val, gold = three_way(examples, cfg.gold_fraction, cfg.val_fraction, cfg.gold_labelers)
    fresh = label_store.ids_since(engine, watermark)
    # Messages in the gold slice labelled only by untrusted labelers (0 without gold_labelers).
    ignored = len({e.message_id for e in examples}) - len(train) - len(val) - len(gold)
    # The newest labels the refit learns from, checked against the active adapter (noisy labels?).
    new_train = [e for e in train if e.message_id in fresh]
    train = window(train, cfg)
    if not gold:
        why = (f"no labels by {list(cfg.gold_labelers)} in the gold slice" if cfg.gold_labelers
               else "gold set is empty; import more labels")
        return {"action": "skipped", "why": why, "labels": len(examples)}
    act = registry.active(engine, name)
    warm = Path(act["artifact_path"]) if act and cfg.warm_start else None
    version = f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    out = cfg.adapters_dir / name / version
    base = base_model_dir(cfg)
    log.info("trainer.refit", version=version, new_labels=new, train=len(train), val=len(val), gold=len(gold),
             gold_slice_ignored=ignored)
    res = fit(cfg, base, train, val, out, warm_start=warm, progress=progress)
    cand_gold = evaluate_examples(res.model, res.tokenizer, gold, cfg.labels, cfg.max_length)
    act_gold = new_label_error = None
    if act:
        check_labels = bool(new_train) and cfg.label_noise_tolerance < 1
        act_gold, *act_new = evaluate_adapter(cfg, Path(act["artifact_path"]), gold,
                                              *([new_train] if check_labels else []), sha256=act["sha256"])
        new_label_error = 1.0 - act_new[0]["accuracy"] if act_new else None
        registry.record_gold(engine, act["version"], act_gold, scored_by=version)
    decision = decide(cand_gold, act_gold, metric=cfg.primary_metric, margin=cfg.promote_margin,
                      recall_tolerance=cfg.recall_tolerance, new_label_error=new_label_error,
                      label_noise_tolerance=cfg.label_noise_tolerance)
    metrics = {"gold": cand_gold, "val": res.best, "active_gold": act_gold, "history": res.history,
               "counts": {"train": len(train), "val": len(val), "gold": len(gold), "gold_slice_ignored": ignored,
                          "new_labels_checked": len(new_train)},
               "new_label_error": new_label_error,
               "fit_seconds": res.seconds}
    registry.register(engine, name=name, version=version, kind=cfg.method, base_model=base.name,
                      artifact_path=out.resolve(), sha256=adapter_sha256(out), metrics=metrics,
                      parent_version=act["version"] if act else None, label_watermark=wm)
    if decision.promote:
        registry.promote(engine, version, channel=cfg.notify_channel, reasons=decision.reasons)
    else:
        registry.reject(engine, version, decision.reasons)
    write_report(cfg.reports_dir / version, f"{version} on the gold set", cand_gold, res.history,
                 extra={"decision": "promoted" if decision.promote else "rejected",
                        "reasons": "; ".join(decision.reasons),
                        "active": act["version"] if act else None})
    pm = cfg.primary_metric
    return {"action": "promoted" if decision.promote else "rejected", "version": version,
            "reasons": decision.reasons, f"gold_{pm}": cand_gold[pm],
            f"active_gold_{pm}": act_gold[pm] if act_gold else None, "gold": len(gold), "train": len(train),
            "val": len(val), "gold_slice_ignored": ignored, "new_label_error": new_label_error, "watermark": wm}


def serve(settings: Settings, cfg: TrainingSettings, *, consume: bool = True,
          stop: threading.Event | None = None) -> int:
    """Consume the labels topic and refit on an interval until SIGTERM/SIGINT (or ``stop`` is set)."""
    from training.consumer import LabelsConsumer

    if stop is None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    engine = make_engine(settings.database.url.get_secret_value())
    ensure_shipped_adapter(engine, cfg)
    consumer = LabelsConsumer(settings.kafka, cfg.labels_topic, engine, cfg.labels) if consume else None
    log.info("trainer.start", interval_s=cfg.interval_s, min_new_labels=cfg.min_new_labels,
             topic=cfg.labels_topic if consume else None)
    try:
        while not stop.is_set():
            deadline = time.monotonic() + cfg.interval_s
            while consumer and not stop.is_set() and time.monotonic() < deadline:
                consumer.poll_once(timeout_ms=1000)
            if not consumer:
                stop.wait(cfg.interval_s)
            if stop.is_set():
                break
            try:
                log.info("trainer.cycle", **{k: v for k, v in run_once(settings, cfg, engine=engine,
                                                                        progress=False).items() if k != "reasons"})
            except Exception:
                log.exception("trainer.cycle_failed")  # the next cycle retries; the service stays up
    finally:
        if consumer:
            consumer.close()
        engine.dispose()
    log.info("trainer.stopped")
    return 0

"""One refit (``train --once``) and the long-running trainer loop.

A refit: labels since the watermark → dataset minus the gold set → fit → measure candidate and
active adapter on the same gold set → register → gate → promote (NOTIFY) or reject.
"""

from __future__ import annotations

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
from training.dataset import Dataset, read_dataset
from training.errors import TrainingError
from training.gate import Decision, decide
from training.metrics import compute_metrics
from training.outcome import NoGoldSet, Outcome, Refit, Scores, TooFewLabels
from training.pipeline import base_model_dir
from training.report import write_report
from training.tasks import evaluate_examples
from training.trainer import FitResult, fit

log = structlog.get_logger("training.service")


def run_once(settings: Settings, cfg: TrainingSettings, *, force: bool = False,
             engine: Engine | None = None, progress: bool = True) -> Outcome:
    """A refit once ``training.min_new_labels`` new labels arrived (or with ``force``), else a skip."""
    engine = engine or make_engine(settings.database.url.get_secret_value())
    ensure_shipped_adapter(engine, cfg)
    last = registry.latest(engine, cfg.adapter_name)
    since = last["label_watermark"] if last else 0
    new = label_store.count_since(engine, since)
    if new < cfg.min_new_labels and not force:
        log.info("trainer.skip", new_labels=new, min_new_labels=cfg.min_new_labels)
        return TooFewLabels(new, cfg.min_new_labels)
    data = read_dataset(engine, cfg, since)
    if not data.gold:
        why = (f"no labels by {list(cfg.gold_labelers)} in the gold slice" if cfg.gold_labelers
               else "gold set is empty; import more labels")
        return NoGoldSet(why, data.labels)
    return refit(engine, cfg, data, new, progress, settings.model.cache_dir)


def refit(engine: Engine, cfg: TrainingSettings, data: Dataset, new_labels: int, progress: bool,
          cache_dir: Path | None = None) -> Refit:
    """Fit a candidate, measure it against the active adapter, register it, promote or reject it."""
    name = cfg.adapter_name
    act = registry.active(engine, name)
    warm = Path(act["artifact_path"]) if act and cfg.warm_start else None
    version = f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    out = cfg.adapters_dir / name / version
    base = base_model_dir(cfg, cache_dir)
    log.info("trainer.refit", version=version, new_labels=new_labels, train=len(data.train), val=len(data.val),
             gold=len(data.gold), gold_slice_ignored=data.gold_slice_ignored)
    fitted = fit(cfg, base, data.train, data.val, out, warm_start=warm, progress=progress)
    scores = measure(engine, cfg, fitted, data, act, version, cache_dir)
    result = Refit(version=version, metric=cfg.primary_metric, scores=scores, decision=gate(cfg, scores),
                   counts=data.counts(), watermark=data.watermark, train_label_counts=data.label_counts())
    registry.register(engine, name=name, version=version, kind=cfg.method, base_model=base.name,
                      artifact_path=out.resolve(), sha256=adapter_sha256(out), metrics=result.registry_metrics(fitted),
                      parent_version=act["version"] if act else None, label_watermark=data.watermark)
    registry.settle(engine, version, result.decision, channel=cfg.notify_channel)
    write_report(cfg.reports_dir / version, f"{version} on the gold set", scores.candidate, fitted.history,
                 extra={"decision": result.action, "reasons": "; ".join(result.decision.reasons),
                        "active": act["version"] if act else None})
    return result


def measure(engine: Engine, cfg: TrainingSettings, fitted: FitResult, data: Dataset, act: dict | None,
            version: str, cache_dir: Path | None = None) -> Scores:
    """The candidate and the active adapter on the gold set, and the active adapter on the new labels
    (noisy labels?) unless that check is off. An active adapter without gold metrics keeps these."""
    candidate = evaluate_examples(fitted.model, fitted.task, data.gold)
    if not act:
        return Scores(candidate)
    check_labels = bool(data.new_train) and cfg.label_noise_tolerance < 1
    active, *on_new = evaluate_adapter(cfg, Path(act["artifact_path"]), data.gold,
                                       *([data.new_train] if check_labels else []), sha256=act["sha256"],
                                       cache_dir=cache_dir)
    registry.record_gold(engine, act["version"], active, scored_by=version)
    return Scores(candidate, active, 1.0 - on_new[0]["accuracy"] if on_new else None)


def gate(cfg: TrainingSettings, scores: Scores) -> Decision:
    return decide(scores.candidate, scores.active, metric=cfg.primary_metric, margin=cfg.promote_margin,
                  recall_tolerance=cfg.recall_tolerance, new_label_error=scores.new_label_error,
                  label_noise_tolerance=cfg.label_noise_tolerance)


def adapter_sha256(path: Path) -> str:
    from models.checks import adapter_sha256 as sha

    return sha(path)


def evaluate_adapter(cfg: TrainingSettings, adapter_dir: Path, *example_sets,
                     sha256: str | None = None, cache_dir: Path | None = None) -> list[dict]:
    """Metrics of a registered adapter on each set (today's gold set, the new labels), loaded once,
    by the daemon's loader (its checks, the registry's sha256); in fp32, as the candidate is measured."""
    from pydantic import ValidationError

    from models.loading import load_classifier
    from schemas.settings import ModelSettings

    try:
        model = ModelSettings(path=cfg.base_model, adapter_path=adapter_dir, adapter_sha256=sha256,
                              device=cfg.device, precision="fp32", cache_dir=cache_dir, **spec_settings(cfg))
    except ValidationError as e:
        raise TrainingError(f"adapter {adapter_dir}: {e.errors()[0]['msg']}") from None
    clf = load_classifier(model)
    index = {n: i for i, n in enumerate(cfg.labels)}
    return [compute_metrics([index[e.label] for e in examples],
                            clf.classify([e.text for e in examples]).probs.argmax(1), cfg.labels)
            for examples in example_sets]


def spec_settings(cfg: TrainingSettings) -> dict:
    """The model settings naming what the adapter was trained for: ``training.spec`` (its labels and
    prompt), else the labels and length the head was trained with."""
    if cfg.spec is None:
        return {"labels": cfg.labels, "max_length": cfg.max_length}
    from models.spec import is_preset

    return {"preset": cfg.spec} if is_preset(cfg.spec) else {"spec_file": Path(cfg.spec)}


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
                summary = run_once(settings, cfg, engine=engine, progress=False).to_json()
                summary.pop("reasons", None)
                log.info("trainer.cycle", **summary)
            except Exception:
                log.exception("trainer.cycle_failed")  # the next cycle retries; the service stays up
    finally:
        if consumer:
            consumer.close()
        engine.dispose()
    log.info("trainer.stopped")
    return 0

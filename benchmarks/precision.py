"""`model.precision` on the daemon's default classifier (offline MiniLM + shipped SST-2 LoRA, the
`minilm-lora-sst2` spec `load_classifier` builds), CPU: fp32, bf16 autocast over fp32 weights (what
`auto` runs where the hardware has native bf16) and bf16 weights (`bf16`).

    .venv/bin/python -m benchmarks.precision [--call-size 32] [--repeats 3] [--threads 2]

Speed: SST-2 training sentences (``--n``) in calls of ``--call-size`` (the benchmarks' daemon batch),
the precisions alternating within each repeat, so the ratios compare runs under the same load.
Agreement: the 872 SST-2 dev sentences under each, with its accuracy against the gold labels, and
against fp32 the label agreement and the largest probability difference.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.common import DATA_DIR, fmt_runs, load_texts, machine, median, table, timed_classify
from models.classifier import SpecClassifier
from models.loading import spec_from_settings
from models.runtime import native_bf16
from schemas.settings import ModelSettings


def dev_set() -> tuple[list[str], np.ndarray]:
    from training.readers import read_labeled, split

    rows, _ = split(list(read_labeled(DATA_DIR / "sst2" / "dev.tsv", ("negative", "positive"))))
    return [r.text for r in rows], np.array([r.label == "positive" for r in rows], dtype=int)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--call-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine(), f"native bf16: {native_bf16(torch.device('cpu'))}", flush=True)
    fp32 = spec_from_settings(ModelSettings(device="cpu", precision="fp32"))
    clfs = {"fp32": SpecClassifier(fp32),
            "bf16 autocast": SpecClassifier(fp32.with_overrides(**{"runtime.autocast": "bf16"})),
            "bf16 weights": SpecClassifier(spec_from_settings(ModelSettings(device="cpu", precision="bf16")))}
    texts = load_texts(args.n)
    calls = [texts[i:i + args.call_size] for i in range(0, len(texts), args.call_size)]
    for clf in clfs.values():
        timed_classify(clf, calls[:2])  # warm-up
    rates: dict[str, list[float]] = {p: [] for p in clfs}
    for _ in range(args.repeats):
        for p, clf in clfs.items():
            rates[p].append(timed_classify(clf, calls)[0])
    dev, gold = dev_set()
    dev_calls = [dev[i:i + args.call_size] for i in range(0, len(dev), args.call_size)]
    dev_probs = {p: timed_classify(clf, dev_calls)[1] for p, clf in clfs.items()}
    rows = [[p, f"{median(rates[p]):.1f}", fmt_runs(rates[p]), f"{(dev_probs[p].argmax(1) == gold).mean():.4f}"]
            for p in clfs]
    print(f"{len(texts)} SST-2 training sentences in calls of {args.call_size}, {args.repeats} repeats, "
          f"torch threads {args.threads}")
    print(table(["precision", "msgs/s (median)", "runs", "SST-2 dev accuracy"], rows))
    ref = dev_probs["fp32"]
    for p in list(clfs)[1:]:
        print(f"\n{p} ÷ fp32 speed: {median(rates[p]) / median(rates['fp32']):.2f}x; on {len(dev)} dev sentences "
              f"labels agree {(ref.argmax(1) == dev_probs[p].argmax(1)).mean():.4f}, "
              f"max |prob diff| {np.abs(ref - dev_probs[p]).max():.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Sub-batch inputs built in a background thread vs in line, on the offline MiniLM + shipped SST-2 LoRA (CPU).

    nice -n 5 .venv/bin/python -m benchmarks.overlap [--n 1024] [--call-size 64] [--token-budget 256]
                                                     [--repeats 3] [--threads 2]

SST-2 training sentences are classified in calls of ``--call-size`` (the daemon's batch size);
each call is cut into token-budget forward passes. The classifier is the daemon's default
(``load_classifier`` with no preset: ``minilm-lora-sst2``, ``models.classifier.SpecClassifier``).
Modes alternate within each repeat, so a ratio compares runs made under the same load. Prints msgs/s
(median of the repeats), the ratio, and the max |probability difference| between the modes.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.common import fmt_runs, load_texts, machine, median, table, timed_classify
from models.batching import plan_batches
from models.loading import load_classifier
from schemas.settings import ModelSettings


def classifiers(token_budget: int) -> dict[str, dict[bool, object]]:
    default = {overlap: load_classifier(ModelSettings(device="cpu", token_budget=token_budget,
                                                      overlap_host_work=overlap))
               for overlap in (False, True)}
    return {"daemon default (minilm-lora-sst2)": default}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--call-size", type=int, default=64)
    ap.add_argument("--token-budget", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine(), flush=True)
    texts = load_texts(args.n)
    calls = [texts[i:i + args.call_size] for i in range(0, len(texts), args.call_size)]
    rows = []
    for name, pair in classifiers(args.token_budget).items():
        encode = pair[False].renderer.encode
        passes = np.mean([len(plan_batches([len(x) for x in encode(c)], args.token_budget)) for c in calls])
        timed_classify(pair[False], calls[:2]), timed_classify(pair[True], calls[:2])  # warm-up
        rates: dict[bool, list[float]] = {False: [], True: []}
        diff = 0.0
        for _ in range(args.repeats):
            (r_seq, p_seq), (r_ovl, p_ovl) = timed_classify(pair[False], calls), timed_classify(pair[True], calls)
            rates[False].append(r_seq)
            rates[True].append(r_ovl)
            diff = max(diff, float(np.abs(p_seq - p_ovl).max()))
        seq, ovl = median(rates[False]), median(rates[True])
        rows.append([name, f"{passes:.1f}", f"{seq:.1f}", f"{ovl:.1f}", f"{ovl / seq:.2f}x", f"{diff:.1e}"])
        print(f"done: {name}: sequential {fmt_runs(rates[False])}, overlapped {fmt_runs(rates[True])} msgs/s",
              flush=True)
    print(f"{len(texts)} SST-2 sentences in calls of {args.call_size}, token budget {args.token_budget}, "
          f"{args.repeats} repeats, torch threads {args.threads}")
    print(table(["classifier", "passes per call", "sequential msgs/s", "overlapped msgs/s", "ratio",
                 "max |prob diff|"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

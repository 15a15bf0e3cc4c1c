"""Several SST-2 training recipes x seeds at once, each a real `train_from_files` run (the code
`sentistream train --train-file` runs), scored on dev. Ranks recipes before a timed CPU run.

    python -m benchmarks.sst2_sweep [--recipes run4,r64,mean,r64-mean] [--seeds 13,1,2]
        [--parallel 6] [--base DIR] [--out DIR]

Each job is its own process (``--parallel`` at a time), on ``training.device`` auto: on a GPU
machine the jobs share the GPU. Prints one row per job and the mean dev accuracy per recipe.
Every recipe starts from SST-2 run 4's settings (its command is in benchmarks/HISTORY.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Not benchmarks.common's DATA_DIR: that module needs the Kafka and Postgres clients, which a GPU
# machine running only this sweep does not have.
DATA = Path(os.environ.get("SENTISTREAM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
RUN4 = {"precision": "bf16", "lora_dropout": 0.0, "learning_rate": 1e-3, "epochs": 2, "val_fraction": 0.015,
        "eval_every_steps": 0, "early_stopping_patience": 100, "keep": "last"}
RECIPES = {
    "run4": {},
    "r64": {"lora_r": 64, "lora_alpha": 128},
    "mean": {"pooling": "mean"},
    "r64-mean": {"lora_r": 64, "lora_alpha": 128, "pooling": "mean"},
    "lr5e-4": {"learning_rate": 5e-4},
    "r64-lr5e-4": {"lora_r": 64, "lora_alpha": 128, "learning_rate": 5e-4},
    "3ep": {"epochs": 3},
}


def one(recipe: str, seed: int, base: Path | None, out: Path) -> dict:
    from schemas.settings import TrainingSettings
    from training.pipeline import train_from_files

    cfg = TrainingSettings(**RUN4, **RECIPES[recipe], seed=seed, base_model=base)
    run = out / f"{recipe}-s{seed}"
    summary = train_from_files(cfg, DATA / "sst2" / "train.tsv", DATA / "sst2" / "dev.tsv", run / "adapter",
                               run / "report")
    return {"recipe": recipe, "seed": seed, **summary}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default="run4,r64,mean,r64-mean")
    ap.add_argument("--seeds", default="13,1,2")
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--base", type=Path, help="base model directory (default: the offline MiniLM)")
    ap.add_argument("--out", type=Path, default=Path("var/sst2-sweep"))
    ap.add_argument("--one", nargs=2, metavar=("RECIPE", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one(args.one[0], int(args.one[1]), args.base, args.out)), flush=True)
        return 0
    jobs = [(r, int(s)) for r in args.recipes.split(",") for s in args.seeds.split(",")]
    unknown = sorted({r for r, _ in jobs} - RECIPES.keys())
    if unknown:
        ap.error(f"unknown recipes {unknown}; known: {sorted(RECIPES)}")
    args.out.mkdir(parents=True, exist_ok=True)

    def run(job):
        cmd = [sys.executable, "-m", "benchmarks.sst2_sweep", "--one", job[0], str(job[1]), "--out", str(args.out)]
        if args.base:
            cmd += ["--base", str(args.base)]
        t0 = time.monotonic()
        with (args.out / f"{job[0]}-s{job[1]}.log").open("w") as err:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        found = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
        res = json.loads(found[-1][7:]) if found else {"recipe": job[0], "seed": job[1], "error": p.returncode}
        res["wall"] = round(time.monotonic() - t0, 1)
        return res

    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(run, jobs))
    print("| recipe | seed | steps | fit s | wall s | val acc | dev acc | dev macro-F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['recipe']} | {r['seed']} | failed (exit {r['error']}, see its log) | | {r['wall']} | | | |")
            continue
        print(f"| {r['recipe']} | {r['seed']} | {r['steps']} | {r['fit_seconds']} | {r['wall']} "
              f"| {r['best_val']['accuracy']:.4f} | {r['eval']['accuracy']:.4f} | {r['eval']['macro_f1']:.4f} |")
    print("\n| recipe | runs | mean dev acc | min | max |")
    print("|---|---|---|---|---|")
    for name in dict.fromkeys(r for r, _ in jobs):
        acc = [r["eval"]["accuracy"] for r in results if r["recipe"] == name and "eval" in r]
        if acc:
            print(f"| {name} | {len(acc)} | {statistics.mean(acc):.4f} | {min(acc):.4f} | {max(acc):.4f} |")
    return 0 if all("eval" in r for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

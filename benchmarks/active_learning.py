"""Active learning on SST-2: labels chosen by the console's queue against labels chosen at random.

A pool of SST-2 training sentences (a seeded sample) stands in for the unlabelled stream, and their
gold labels for the human. The pool keeps only items of at least ``--min-words`` words (default 5):
about a third of SST-2 train are GLUE's phrase fragments ("the", "of the film"), not messages, while
the stream the console's queue serves (and SST-2 dev, the eval) is whole sentences. Round 0 labels a
random 200 of the pool, the same for both strategies.
Each round fits a fresh adapter from the base on every label so far (the trainer ``sentistream
train --train-file`` runs: ``training.trainer.fit`` with its validation slice taken the same way),
scores it on all of SST-2 dev, and picks the next labels from the rest of the pool:

- queue: ``console.selection.choose`` on the pool's margins under the round's adapter (each pick
  from a sample of 500 of those left, weighted by 1 − margin, with the console's random share),
- random: uniformly.

Each fit follows ``--recipe``: the trainer's defaults, or ``fixed-steps`` (FIXED_STEPS, at least
``--min-steps`` optimizer steps), which keeps the training length from growing with the labels.

Target: the queue reaches the random strategy's accuracy at the largest label count with at most
600 labels.

    .venv/bin/python -m benchmarks.active_learning     # pool 4,000 of 5+ words, 200 -> 1,000 labels, seeds 1, 2
    .venv/bin/python -m benchmarks.active_learning --seeds 1,2,3 --precision bf16   # RESULTS.md, run 2
    # RESULTS.md, runs 3 (least margin first) and 4 (the weighted draw):
    .venv/bin/python -m benchmarks.active_learning --seeds 1,2,3,4 --precision bf16 --recipe fixed-steps --jobs 2
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from benchmarks import common as c
from console.selection import Candidate, Pick, choose, margin
from schemas.settings import TrainingSettings
from training.readers import Example, read_labeled, split
from training.splits import bucket, dedupe
from training.tasks import evaluate_examples, predict_examples
from training.trainer import FitResult, fit, total_steps

LABELS = ("negative", "positive")
STRATEGIES = ("queue", "random")
TARGET_LABELS = 600
OUT = c.REPO / "benchmarks" / "reports" / "active_learning"
HEADERS = ["labels", "queue accuracy (mean)", "random accuracy (mean)", "queue per seed", "random per seed"]


@dataclass(frozen=True)
class Round:
    """One strategy's adapter after one round, and the picks that brought its labels to this count."""
    seed: int
    strategy: str
    labels: int
    accuracy: float
    macro_f1: float
    fit_seconds: float
    picks: tuple[Pick, ...] = ()
    # The margins of the candidates the queue chose from (queue rounds only; not written to results.json).
    margins: dict[str, float] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Curves:
    """Mean accuracy per label count of each strategy, over the seeds."""
    counts: tuple[int, ...]
    mean: dict[str, tuple[float, ...]]

    def target(self) -> tuple[float, int | None]:
        """Random's accuracy at the largest count, and the smallest count at which the queue's reaches it."""
        goal = self.mean["random"][-1]
        return goal, next((n for n, a in zip(self.counts, self.mean["queue"]) if a >= goal), None)


def sst2(path: Path) -> list[Example]:
    """One example per distinct sentence (SST-2 train repeats some phrases)."""
    rows, _ = split(list(read_labeled(path, LABELS)))
    return dedupe(rows)


def words(e: Example) -> int:
    return len((e.text or "").split())


def refit(cfg: TrainingSettings, base: Path, labelled: Sequence[Example], out: Path, min_steps: int = 0) -> FitResult:
    """A fresh adapter on ``labelled``, with the validation slice ``sentistream train --train-file`` takes;
    with ``min_steps``, enough epochs for at least that many optimizer steps."""
    val = [e for e in labelled if bucket(e.message_id) < cfg.val_fraction]
    train = [e for e in labelled if bucket(e.message_id) >= cfg.val_fraction]
    if min_steps:
        per_epoch = total_steps(cfg.model_copy(update={"epochs": 1.0}), len(train))
        epochs = max(cfg.epochs, math.ceil(min_steps / per_epoch))
        cfg = cfg.model_copy(update={"epochs": float(epochs), "early_stopping_patience": epochs})
    return fit(cfg, base, train, val, out, progress=False)


def next_picks(strategy: str, res: FitResult, unlabelled: Sequence[Example], k: int,
               rng: random.Random) -> tuple[list[Pick], dict[str, float]]:
    """The next ``k`` labels from ``unlabelled``, and (queue) the margins they were chosen on."""
    if strategy == "random":
        # No model is consulted, so a random pick has no margin.
        return [Pick(e.message_id, float("nan"), "random") for e in rng.sample(list(unlabelled), k)], {}
    probs = predict_examples(res.model, res.task, unlabelled)
    margins = {e.message_id: margin(p) for e, p in zip(unlabelled, probs.tolist())}
    return choose([Candidate(m, v) for m, v in margins.items()], k, rng), margins


def scored(seed: int, strategy: str, n: int, res: FitResult, dev: Sequence[Example], picks: Sequence[Pick] = (),
           margins: dict[str, float] | None = None) -> Round:
    m = evaluate_examples(res.model, res.task, dev)
    return Round(seed, strategy, n, m["accuracy"], m["macro_f1"], res.seconds, tuple(picks), margins or {})


def run_seed(cfg: TrainingSettings, base: Path, pool: Sequence[Example], dev: Sequence[Example], counts: Sequence[int],
             seed: int, work: Path, min_steps: int = 0) -> list[Round]:
    """Both strategies' rounds for one seed; round 0 (the first ``counts[0]`` random labels) is shared."""
    start = random.Random(seed).sample(list(pool), counts[0])
    first = refit(cfg, base, start, work / "r0", min_steps)
    shared = scored(seed, "random", counts[0], first, dev)
    rounds = [shared, replace(shared, strategy="queue")]
    print(f"seed {seed}: {counts[0]} labels, dev accuracy {shared.accuracy:.4f} (fit {shared.fit_seconds:.0f} s)",
          flush=True)
    for strategy in STRATEGIES:
        # Seeded by a string: the same stream on every run and machine (unlike hash()).
        rng, labelled, res = random.Random(f"{seed}:{strategy}"), list(start), first
        for n in counts[1:]:
            have = {e.message_id for e in labelled}
            unlabelled = [e for e in pool if e.message_id not in have]
            picks, margins = next_picks(strategy, res, unlabelled, n - len(labelled), rng)
            chosen = {p.message_id for p in picks}
            labelled += [e for e in unlabelled if e.message_id in chosen]
            res = refit(cfg, base, labelled, work / f"{strategy}-{n}", min_steps)
            rounds.append(scored(seed, strategy, n, res, dev, picks, margins))
            print(f"seed {seed}: {strategy} {n} labels, dev accuracy {rounds[-1].accuracy:.4f} "
                  f"(fit {res.seconds:.0f} s)", flush=True)
    return rounds


def curves(rounds: Sequence[Round], counts: Sequence[int]) -> Curves:
    def mean(strategy: str, n: int) -> float:
        return statistics.fmean(r.accuracy for r in rounds if r.strategy == strategy and r.labels == n)

    return Curves(tuple(counts), {s: tuple(mean(s, n) for n in counts) for s in STRATEGIES})


def per_seed(rounds: Sequence[Round], strategy: str, n: int) -> str:
    return " / ".join(f"{r.accuracy:.4f}" for r in rounds if r.strategy == strategy and r.labels == n)


def rows(rounds: Sequence[Round], cv: Curves) -> list[list[str]]:
    return [[str(n), f"{cv.mean['queue'][i]:.4f}", f"{cv.mean['random'][i]:.4f}", per_seed(rounds, "queue", n),
             per_seed(rounds, "random", n)] for i, n in enumerate(cv.counts)]


def target_line(cv: Curves) -> str:
    goal, reached = cv.target()
    top = cv.counts[-1]
    if reached is None:
        return (f"target (queue reaches random's {top:,}-label accuracy {goal:.4f} with at most {TARGET_LABELS} "
                f"labels): **missed**, the queue never reaches it up to {top:,} labels")
    verdict = "met" if reached <= TARGET_LABELS else "**missed**"
    return (f"target (queue reaches random's {top:,}-label accuracy {goal:.4f} with at most {TARGET_LABELS} "
            f"labels): {verdict}, first at {reached:,} labels")


def plot(rounds: Sequence[Round], cv: Curves, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, color in zip(STRATEGIES, ("tab:red", "tab:blue")):
        for seed in sorted({r.seed for r in rounds}):
            own = [r for r in rounds if r.strategy == strategy and r.seed == seed]
            ax.plot([r.labels for r in own], [r.accuracy for r in own], color=color, alpha=0.3, lw=1)
        ax.plot(cv.counts, cv.mean[strategy], color=color, marker="o", lw=2, label=f"{strategy} (mean)")
    ax.axhline(cv.target()[0], color="grey", ls="--", lw=1, label=f"random at {cv.counts[-1]:,} labels")
    ax.set(xlabel="labels", ylabel="SST-2 dev accuracy", xticks=list(cv.counts),
           title="Active learning: the console's queue against random (thin: each seed)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def pick_summary(r: Round) -> dict:
    by_reason = {reason: sum(p.reason == reason for p in r.picks) for reason in ("margin", "random")}
    chosen = [p.margin for p in r.picks if p.reason == "margin"]
    return {**by_reason, "mean_margin_of_margin_picks": statistics.fmean(chosen) if chosen else None}


def write_reports(out: Path, meta: dict, rounds: Sequence[Round], cv: Curves) -> None:
    """results.json, curve.png and report.md in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    goal, reached = cv.target()
    results = {**meta, "mean": {s: dict(zip(cv.counts, v)) for s, v in cv.mean.items()},
               "target": {"random_accuracy_at_max": goal, "queue_labels_to_reach_it": reached,
                          "met": reached is not None and reached <= TARGET_LABELS},
               "rounds": [{k: v for k, v in asdict(r).items() if k not in ("picks", "margins")}
                          | ({"picks": pick_summary(r)} if r.picks else {}) for r in rounds]}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(rounds, cv, out / "curve.png")
    lines = ["# Active learning on SST-2: the console's queue against random", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", c.table(HEADERS, rows(rounds, cv)), "", target_line(cv), "", "![curve](curve.png)", ""]
    (out / "report.md").write_text("\n".join(lines))


# A fixed step budget, the same for both strategies: under the trainer's defaults (3 epochs) the optimizer
# steps grow with the labels (18 at 200, 90 at 1,000), so a label count's accuracy also measures how
# long the adapter trained. Mean pooling (the base's own, "auto") and the last state, as the shipped
# adapter was trained; no early stopping on the small validation slice.
FIXED_STEPS = {"pooling": "auto", "keep": "last"}


def settings(args) -> TrainingSettings:
    """The trainer's defaults (LoRA on the offline MiniLM), or with ``--recipe fixed-steps`` FIXED_STEPS;
    threads and precision from the command line."""
    extra = FIXED_STEPS if args.recipe == "fixed-steps" else {}
    return TrainingSettings(labels=LABELS, base_model=args.base_model, threads=args.threads,
                            precision=args.precision, **extra)


def min_steps(args) -> int:
    return args.min_steps if args.recipe == "fixed-steps" else 0


def setup(args, cfg: TrainingSettings, base: Path, machine: str, sizes: dict[str, int], counts: Sequence[int]) -> dict:
    """The run's set-up for the reports; ``sizes``: the pool, the items with enough words, SST-2 train, dev."""
    return {"command": " ".join(["python -m benchmarks.active_learning", *(args.argv or [])]), "machine": machine,
            "base": str(base), "pool": f"{sizes['pool']:,} SST-2 train sentences (seeded sample, seed "
            f"{args.pool_seed}, of the {sizes['messages']:,} of {sizes['train']:,} distinct ones with at least "
            f"{args.min_words} words)", "eval": f"SST-2 dev, {sizes['dev']} sentences",
            "schedule": f"{counts[0]} random labels, then +{args.step} per round up to {counts[-1]}",
            "training": f"training.trainer.fit, recipe {args.recipe} (method {cfg.method}, r {cfg.lora_r}, "
            f"lr {cfg.learning_rate}, " + (f"at least {args.min_steps} steps, no early stopping" if min_steps(args)
                                           else f"{cfg.epochs:g} epochs") + f", pooling {cfg.pooling}, keep "
            f"{cfg.keep}); precision {cfg.precision}, {cfg.threads} thread(s)"}


def seed_runs(args, cfg: TrainingSettings, base: Path, pool: Sequence[Example], dev: Sequence[Example],
              counts: Sequence[int], work: Path) -> Iterator[list[Round]]:
    """Each seed's rounds as it finishes; with ``--jobs`` above 1, seeds run in that many processes."""
    jobs = [(cfg, base, pool, dev, counts, seed, work / str(seed), min_steps(args)) for seed in args.seeds]
    if args.jobs == 1:
        yield from (run_seed(*j) for j in jobs)
        return
    # By module name: under ``python -m`` this module is __main__, which a spawned worker cannot import.
    worker = importlib.import_module("benchmarks.active_learning").run_seed
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
        yield from (f.result() for f in as_completed([ex.submit(worker, *j) for j in jobs]))


def run(args) -> dict:
    from training.pipeline import base_model_dir

    t0 = time.monotonic()
    machine = c.machine()
    print(machine, flush=True)
    cfg = settings(args)
    base = base_model_dir(cfg)
    train_all = sst2(args.data_dir / "sst2" / "train.tsv")
    messages = [e for e in train_all if words(e) >= args.min_words]
    pool = random.Random(args.pool_seed).sample(messages, min(args.pool, len(messages)))
    dev = sst2(args.data_dir / "sst2" / "dev.tsv")
    counts = list(range(args.start, args.max_labels + 1, args.step))
    sizes = {"pool": len(pool), "messages": len(messages), "train": len(train_all), "dev": len(dev)}
    fixed = setup(args, cfg, base, machine, sizes, counts)
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="sentistream-al-") as work:
        for done in seed_runs(args, cfg, base, pool, dev, counts, Path(work)):
            rounds = sorted([*rounds, *done], key=lambda r: r.seed)
            # Written after every seed, so a run stopped for time keeps the seeds it finished.
            cv = curves(rounds, counts)
            meta = {**fixed, "seeds": sorted({r.seed for r in rounds}), "seconds": round(time.monotonic() - t0)}
            write_reports(args.out, meta, rounds, cv)
    print(c.table(HEADERS, rows(rounds, cv), title="SST-2 dev accuracy by labels, queue against random"))
    print(f"\n{target_line(cv)}\nreports in {args.out}; total {meta['seconds']} s; load average at end "
          + " / ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    return {"rounds": rounds, "curves": cv, "meta": meta}


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", type=int, default=4000, help="unlabelled pool size (SST-2 train sentences)")
    ap.add_argument("--pool-seed", type=int, default=0)
    ap.add_argument("--min-words", type=int, default=5, help="pool items with at least this many words (default 5: "
                    "the pool stands for a message stream, so GLUE's phrase fragments are left out)")
    ap.add_argument("--start", type=int, default=200, help="random labels of round 0, shared by both strategies")
    ap.add_argument("--step", type=int, default=200, help="labels added per round")
    ap.add_argument("--max-labels", type=int, default=1000)
    ap.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2],
                    help="comma-separated; each seed draws its own round 0 and picks")
    ap.add_argument("--base-model", type=Path, default=None, help="a local model directory; default: the offline "
                    "MiniLM")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="the trainer's (default fp32)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (per job)")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run in this many processes at once")
    ap.add_argument("--recipe", choices=("defaults", "fixed-steps"), default="defaults",
                    help="defaults: the trainer's (3 epochs, so the steps grow with the labels); fixed-steps: at "
                    "least --min-steps optimizer steps every round, mean pooling, the last state")
    ap.add_argument("--min-steps", type=int, default=150, help="fixed-steps: optimizer steps per fit, at least")
    ap.add_argument("--data-dir", type=Path, default=c.DATA_DIR)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    if args.jobs < 1 or args.min_steps < 1:
        ap.error("need --jobs >= 1 and --min-steps >= 1")
    if args.start <= 0 or args.step <= 0 or args.max_labels < args.start or args.max_labels > args.pool:
        ap.error("need 0 < --start <= --max-labels <= --pool and --step > 0")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if not (args.data_dir / "sst2" / "train.tsv").is_file():
        print(f"no SST-2 at {args.data_dir / 'sst2'}: set SENTISTREAM_DATA_DIR or --data-dir", file=sys.stderr)
        return 2
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The epochs of one fit: optimizer steps with gradient accumulation and a linear warm-up/decay,
evaluations on the validation set, early stopping on the primary metric, the wall-clock budget."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import structlog
import torch
from tqdm.auto import tqdm

from schemas.logs import progress_bars
from schemas.settings import TrainingSettings
from training.averaging import WeightAverage
from training.batches import Encoded, length_batches, on_device, predict
from training.frozen_layers import FrozenLayersCache
from training.metrics import compute_metrics
from training.tasks import HeadTask, VerbalizerTask

log = structlog.get_logger("training.loop")

EPOCHS, EARLY_STOPPING, TIME_BUDGET = "epochs", "early stopping", "time budget"
VAL_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "mcc")


@dataclass
class Run:
    """What one fit trains with, set up before the first step."""
    cfg: TrainingSettings
    model: torch.nn.Module
    task: HeadTask | VerbalizerTask
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    loss_fn: torch.nn.Module
    train: Encoded
    val: Encoded
    pad: int
    device: torch.device
    rng: np.random.Generator
    t0: float
    total_steps: int
    cache: FrozenLayersCache | None = None
    average: WeightAverage | None = None
    on_eval: Callable[[dict], None] | None = None

    def averaged(self) -> AbstractContextManager:
        """The weights evaluated and kept: the average's when there is one."""
        return self.average.applied() if self.average else nullcontext()

    def out_of_time(self) -> bool:
        return bool(self.cfg.max_train_seconds) and time.monotonic() - self.t0 > self.cfg.max_train_seconds


@dataclass
class LoopState:
    """What the loop has done so far."""
    step: int = 0
    losses: list[float] = field(default_factory=list)  # since the last evaluation
    history: list[dict] = field(default_factory=list)
    last: dict = field(default_factory=dict)
    best: dict = field(default_factory=dict)
    best_score: float = -math.inf
    best_weights: dict[str, torch.Tensor] | None = None
    bad_evals: int = 0
    stopped: str = EPOCHS


def progress_of(step: int, total_steps: int, t0: float, cfg: TrainingSettings) -> float:
    """Fraction of training done: by steps, or by the wall-clock budget when that comes first, so
    a budget-limited run still decays its learning rate to zero instead of stopping at the peak."""
    p = step / total_steps
    if cfg.max_train_seconds:
        p = max(p, (time.monotonic() - t0) / cfg.max_train_seconds)
    return min(p, 1.0)


def lr_factor(cfg: TrainingSettings, progress: float) -> float:
    """Linear warm-up, then linear decay to zero."""
    w = cfg.warmup_ratio
    if w and progress < w:
        return progress / w
    return max(0.0, (1.0 - progress) / (1.0 - w))


def train_loop(run: Run, progress: bool) -> LoopState:
    """Epochs until they are done, early stopping says stop, or the time budget runs out."""
    state = LoopState()
    schedule = torch.optim.lr_scheduler.LambdaLR(
        run.optimizer, lambda _: lr_factor(run.cfg, progress_of(state.step, run.total_steps, run.t0, run.cfg)))
    for epoch in range(math.ceil(run.cfg.epochs)):
        stop, done = train_epoch(run, state, schedule, epoch, progress)
        if stop == TIME_BUDGET:
            evaluate(run, state, epoch + done)
        if stop is None and not evaluate(run, state, epoch + 1.0):
            stop = EARLY_STOPPING
        if stop is not None:
            state.stopped = stop
            break
    return state


def epoch_batches(run: Run, epoch: int) -> list[np.ndarray]:
    batches = length_batches([len(s) for s in run.train.input_ids], run.cfg.batch_size, run.rng)
    if epoch + 1 > run.cfg.epochs:  # a fractional last epoch
        batches = batches[: int(len(batches) * (run.cfg.epochs - epoch))]
    return batches


def train_epoch(run: Run, state: LoopState, schedule, epoch: int, progress: bool) -> tuple[str | None, float]:
    """One epoch's steps; why it stopped early (else None) and the fraction of the epoch done."""
    batches = epoch_batches(run, epoch)
    bar = tqdm(batches, desc=f"epoch {epoch + 1}", disable=not (progress and progress_bars()),
               mininterval=10, unit="batch")
    try:
        for i, idx in enumerate(bar):
            backward(run, state, idx)
            if (i + 1) % run.cfg.grad_accum and i + 1 < len(batches):
                continue
            optimizer_step(run, state, schedule)
            done = (i + 1) / len(batches)
            if run.out_of_time():
                return TIME_BUDGET, done
            every = run.cfg.eval_every_steps
            if every and state.step % every == 0 and not evaluate(run, state, epoch + done):
                return EARLY_STOPPING, done
        return None, 1.0
    finally:
        bar.close()


def backward(run: Run, state: LoopState, idx: np.ndarray) -> None:
    """Forward one batch (from the frozen layers' cache when there is one) and accumulate its gradients."""
    batch = on_device(run.train, idx, run.pad, run.device)
    start = nullcontext() if run.cache is None else run.cache.feeding(
        run.cache.padded(idx, batch["input_ids"].shape[1]).to(run.device))
    with start, torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.cfg.precision == "bf16"):
        logits = run.task.scores(run.model, batch)
    accum = run.cfg.grad_accum
    loss = run.loss_fn(logits.float(), torch.from_numpy(run.train.labels[idx]).to(run.device)) / accum
    loss.backward()
    state.losses.append(loss.item() * accum)


def optimizer_step(run: Run, state: LoopState, schedule) -> None:
    torch.nn.utils.clip_grad_norm_(run.params, 1.0)
    run.optimizer.step()
    schedule.step()  # reads state.step: the schedule of the step just taken
    run.optimizer.zero_grad(set_to_none=True)
    if run.average:
        run.average.update()
    state.step += 1


def evaluate(run: Run, state: LoopState, epoch: float) -> bool:
    """Record one evaluation on the validation set; False when early stopping says stop."""
    with run.averaged():
        probs = predict(run.task.scores, run.model, run.val, run.pad, len(run.cfg.labels))
    m = state.last = compute_metrics(run.val.labels, probs.argmax(1), run.cfg.labels)
    row = {"step": state.step, "epoch": round(epoch, 3),
           "train_loss": float(np.mean(state.losses)) if state.losses else None,
           "seconds": round(time.monotonic() - run.t0, 1), "val": {k: m[k] for k in VAL_METRICS}}
    state.losses.clear()
    state.history.append(row)
    log.info("fit.eval", step=state.step, epoch=row["epoch"], train_loss=row["train_loss"],
             **{f"val_{k}": round(v, 4) for k, v in row["val"].items()})
    if run.on_eval:
        run.on_eval(row)
    return keep_if_best(run, state, m)


def keep_if_best(run: Run, state: LoopState, metrics: dict) -> bool:
    """Keep the weights of a new best evaluation; False once ``early_stopping_patience`` evaluations
    in a row did not improve."""
    score = metrics[run.cfg.primary_metric]
    if score > state.best_score:
        state.best_score, state.bad_evals, state.best = score, 0, metrics
        with run.averaged():
            state.best_weights = {k: v.detach().clone() for k, v in run.model.named_parameters() if v.requires_grad}
        return True
    state.bad_evals += 1
    return state.bad_evals <= run.cfg.early_stopping_patience

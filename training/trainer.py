"""Fit an adapter by the configured method (training/methods) on labeled examples.

Class-weighted cross-entropy, gradient accumulation, linear warm-up/decay, early stopping on the
validation primary metric, an optional wall-clock budget, fixed seeds. Length-bucketed batches:
short texts dominate sentiment data and padding to the batch maximum wastes most CPU time.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import structlog
import torch
from tqdm.auto import tqdm

from models.loading import is_sparta_dir
from models.pooling import TRAINING_META, adapter_pooling, apply_pooling, base_pooling, pooling_of
from schemas.logs import progress_bars
from schemas.settings import TrainingSettings
from training import methods
from training.averaging import WeightAverage
from training.errors import TrainingError
from training.methods.common import train_device
from training.metrics import compute_metrics
from training.prefix_cache import PrefixCache
from training.readers import Example

log = structlog.get_logger("training.trainer")


@dataclass
class Encoded:
    input_ids: list[list[int]]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class FitResult:
    adapter_dir: Path
    best: dict
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    stopped: str = "epochs"
    model: object = None  # the fitted PEFT model (best state), for evaluating without a reload
    tokenizer: object = None


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def encode(tokenizer, examples: Sequence[Example], labels: Sequence[str], max_length: int) -> Encoded:
    index = {n: i for i, n in enumerate(labels)}
    ids = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)["input_ids"]
    return Encoded(ids, np.array([index[e.label] for e in examples], dtype=np.int64))


def length_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, sort within windows of 50 batches by length, then shuffle the batches."""
    order = rng.permutation(len(lengths))
    window = batch_size * 50
    batches = []
    for s in range(0, len(order), window):
        chunk = order[s : s + window]
        chunk = chunk[np.argsort([lengths[i] for i in chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(enc: Encoded, idx: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    seqs = [enc.input_ids[i] for i in idx]
    width = max(len(s) for s in seqs)
    width = -(-width // 8) * 8
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
        mask[r, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


@torch.inference_mode()
def predict(model, enc: Encoded, pad_id: int, batch_size: int = 128) -> np.ndarray:
    """Class probabilities in input order."""
    was_training = model.training
    model.eval()
    order = np.argsort([len(s) for s in enc.input_ids], kind="stable")
    out = np.zeros((len(enc), model.config.num_labels), dtype=np.float32)
    dev = next(model.parameters()).device
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        batch = {k: v.to(dev) for k, v in collate(enc, idx, pad_id).items()}
        out[idx] = torch.softmax(model(**batch).logits.float(), -1).cpu().numpy()
    model.train(was_training)
    return out


def evaluate_examples(model, tokenizer, examples: Sequence[Example], labels: Sequence[str], max_length: int) -> dict:
    enc = encode(tokenizer, examples, labels, max_length)
    probs = predict(model, enc, tokenizer.pad_token_id or 0)
    return compute_metrics(enc.labels, probs.argmax(1), labels)


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


def class_weights(cfg: TrainingSettings, y: np.ndarray, k: int) -> torch.Tensor | None:
    if cfg.class_weights == "none":
        return None
    if cfg.class_weights == "auto":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(y)
        w = np.ones(k, dtype=np.float32)
        w[present] = compute_class_weight("balanced", classes=present, y=y)
        return torch.tensor(w, dtype=torch.float32)
    if len(cfg.class_weights) != k:
        raise TrainingError(f"training.class_weights has {len(cfg.class_weights)} values for {k} labels")
    return torch.tensor(cfg.class_weights, dtype=torch.float32)


def build_model(cfg: TrainingSettings, base_dir: Path, labels: Sequence[str], warm_start: Path | None = None):
    """A model whose trainable parameters are ``cfg.method``'s. With ``warm_start`` (a PEFT adapter, for
    methods that can continue from one), that adapter on top, with the pooling it was trained with."""
    model = methods.method(cfg.method).build(cfg, base_dir, labels, warm_start)
    if warm_start is not None:
        pooling = adapter_pooling(warm_start)
    else:
        pooling = base_pooling(base_dir) if cfg.pooling == "auto" else cfg.pooling
    dev = train_device(cfg)
    # A 4-bit base is placed while it loads (and refuses .to); the others load on the CPU.
    if next(model.parameters()).device.type != dev.type:
        model = model.to(dev)
    return apply_pooling(model, pooling)


def make_optimizer(cfg: TrainingSettings, params: list) -> torch.optim.Optimizer:
    custom = getattr(methods.method(cfg.method), "optimizer", None)
    if custom is not None:
        return custom(params, cfg)
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


def fit(
    cfg: TrainingSettings,
    base_dir: Path,
    train: Sequence[Example],
    val: Sequence[Example],
    out_dir: Path,
    *,
    warm_start: Path | None = None,
    progress: bool = True,
    on_eval: Callable[[dict], None] | None = None,
) -> FitResult:
    """Train, keep the best validation state, save it in the method's adapter format in ``out_dir``."""
    from transformers import AutoTokenizer

    if not train or not val:
        raise TrainingError(f"need training and validation examples, got {len(train)} and {len(val)}")
    if warm_start is not None and (cfg.method in methods.NO_WARM_START or is_sparta_dir(warm_start)):
        raise TrainingError(f"training.warm_start: cannot continue from {warm_start} with method {cfg.method!r} "
                            "(SpaRTA-format adapters hold deltas against the base); set warm_start to false")
    t0 = time.monotonic()
    labels = tuple(cfg.labels)
    set_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tok = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False)
    tr, va = encode(tok, train, labels, cfg.max_length), encode(tok, val, labels, cfg.max_length)
    model = build_model(cfg, base_dir, labels, warm_start)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(cfg, params)
    dev = params[0].device
    per_epoch = math.ceil(len(tr) / cfg.batch_size)
    total_steps = max(1, math.ceil(per_epoch * cfg.epochs / cfg.grad_accum))
    weights = class_weights(cfg, tr.labels, len(labels))
    loss_fn = torch.nn.CrossEntropyLoss(weight=None if weights is None else weights.to(dev))
    rng = np.random.default_rng(cfg.seed)
    pad = tok.pad_token_id or 0
    metric = cfg.primary_metric
    autocast = cfg.precision == "bf16"
    cache = fill_prefix_cache(model, cfg, tr, pad, dev) if cfg.frozen_layers else None
    average = WeightAverage(params, cfg.ema_decay) if cfg.ema_decay else None
    averaged = average.applied if average else nullcontext
    log.info("fit.start", train=len(tr), val=len(va), steps=total_steps, method=cfg.method,
             trainable=sum(p.numel() for p in params))

    res = FitResult(adapter_dir=Path(out_dir), best={})
    best_score, best_state, bad_evals, step, running = -math.inf, None, 0, 0, []
    last_metrics: dict = {}
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: lr_factor(cfg, progress_of(step, total_steps, t0, cfg)))

    def evaluate(epoch: float) -> bool:
        """Record one evaluation; False when early stopping says stop."""
        nonlocal best_score, best_state, bad_evals, last_metrics
        with averaged():
            probs = predict(model, va, pad)
        m = last_metrics = compute_metrics(va.labels, probs.argmax(1), labels)
        row = {"step": step, "epoch": round(epoch, 3), "train_loss": float(np.mean(running)) if running else None,
               "seconds": round(time.monotonic() - t0, 1), "val": {k: m[k] for k in
               ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "mcc")}}
        running.clear()
        res.history.append(row)
        log.info("fit.eval", step=step, epoch=row["epoch"], train_loss=row["train_loss"],
                 **{f"val_{k}": round(v, 4) for k, v in row["val"].items()})
        if on_eval:
            on_eval(row)
        if m[metric] > best_score:
            best_score, bad_evals, res.best = m[metric], 0, m
            with averaged():
                best_state = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
            return True
        bad_evals += 1
        return bad_evals <= cfg.early_stopping_patience

    stop = None
    for epoch in range(math.ceil(cfg.epochs)):
        batches = length_batches([len(s) for s in tr.input_ids], cfg.batch_size, rng)
        if epoch + 1 > cfg.epochs:  # a fractional last epoch
            batches = batches[: int(len(batches) * (cfg.epochs - epoch))]
        bar = tqdm(batches, desc=f"epoch {epoch + 1}", disable=not (progress and progress_bars()),
                   mininterval=10, unit="batch")
        for i, idx in enumerate(bar):
            batch = {k: v.to(dev) for k, v in collate(tr, idx, pad).items()}
            start = nullcontext() if cache is None else cache.feeding(
                cache.padded(idx, batch["input_ids"].shape[1]).to(dev))
            with start, torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
                logits = model(**batch).logits
            loss = loss_fn(logits.float(), torch.from_numpy(tr.labels[idx]).to(dev)) / cfg.grad_accum
            loss.backward()
            running.append(loss.item() * cfg.grad_accum)
            if (i + 1) % cfg.grad_accum and i + 1 < len(batches):
                continue
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            if average:
                average.update()
            step += 1
            if cfg.max_train_seconds and time.monotonic() - t0 > cfg.max_train_seconds:
                stop = "time budget"
                break
            if cfg.eval_every_steps and step % cfg.eval_every_steps == 0 and not evaluate(epoch + (i + 1) / len(batches)):
                stop = "early stopping"
                break
        bar.close()
        if stop:
            break
        if not evaluate(epoch + 1.0):
            stop = "early stopping"
            break
    if stop == "time budget":
        evaluate(epoch + (i + 1) / len(batches))
    res.stopped = stop or "epochs"
    if cfg.keep == "last":
        res.best = last_metrics
        if average:
            average.copy_to_model()
    elif best_state is not None:
        with torch.no_grad():
            named = dict(model.named_parameters())
            for k, v in best_state.items():
                named[k].copy_(v)
    save_adapter(model, cfg, Path(out_dir), base_dir, res)
    res.steps, res.seconds = step, time.monotonic() - t0
    res.model, res.tokenizer = model.eval(), tok
    log.info("fit.done", steps=step, seconds=round(res.seconds, 1), stopped=res.stopped,
             **{f"best_val_{metric}": round(best_score, 4)})
    return res


def fill_prefix_cache(model, cfg: TrainingSettings, enc: Encoded, pad: int, dev: torch.device) -> PrefixCache:
    t0 = time.monotonic()
    cache = PrefixCache(model, cfg.frozen_layers)
    order = np.argsort([len(s) for s in enc.input_ids], kind="stable")
    chunks = [order[s : s + 128] for s in range(0, len(order), 128)]
    batches = ((idx, {k: v.to(dev) for k, v in collate(enc, idx, pad).items()},
                [len(enc.input_ids[i]) for i in idx]) for idx in chunks)
    autocast = cfg.precision == "bf16"
    cache.fill(batches, len(enc), torch.bfloat16 if autocast else torch.float32, autocast)
    log.info("fit.prefix_cached", layers=cfg.frozen_layers, examples=len(enc), seconds=round(time.monotonic() - t0, 1))
    return cache


def save_adapter(model, cfg: TrainingSettings, out_dir: Path, base_dir: Path, res: FitResult) -> None:
    import peft
    import transformers

    out_dir.mkdir(parents=True, exist_ok=True)
    method = methods.method(cfg.method)
    extra = method.save(model, cfg, out_dir, base_dir)
    meta = {
        "labels": list(cfg.labels),
        "base_model": base_dir.name,
        "method": cfg.method,
        "pooling": pooling_of(model),
        "hyperparameters": cfg.model_dump(mode="json", include={
            "max_length", "learning_rate", "weight_decay", "warmup_ratio", "batch_size", "grad_accum", "epochs",
            "class_weights", "early_stopping_patience", "keep", "precision", "max_train_seconds", "seed",
            "frozen_layers", "ema_decay", *method.HYPERPARAMETERS}),
        **extra,
        "best_val": {k: res.best.get(k) for k in ("accuracy", "macro_f1", "n")},
        "stopped": res.stopped,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    }
    (out_dir / TRAINING_META).write_text(json.dumps(meta, indent=2) + "\n")

"""Fit an adapter by the configured method (training/methods) on labeled examples.

Class-weighted cross-entropy over the task's label scores (training/tasks: a classification head,
or a causal-LM spec's label words), early stopping on the validation primary metric
(training/loop), fixed seeds; the bottom ``frozen_layers`` run once per example (training/frozen_layers).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import structlog
import torch

from models.loading import is_sparta_dir
from models.pooling import TRAINING_META, adapter_pooling, apply_pooling, base_pooling, pooling_of
from schemas.settings import TrainingSettings
from training import methods
from training.averaging import WeightAverage
from training.batches import Encoded, on_device
from training.errors import TrainingError
from training.frozen_layers import FrozenLayersCache
from training.loop import LoopState, Run, train_loop
from training.methods.common import train_device
from training.readers import Example
from training.tasks import CAUSAL_HEADS, HeadTask, VerbalizerTask, load_task_spec, task_for

log = structlog.get_logger("training.trainer")


@dataclass(frozen=True)
class FitResult:
    adapter_dir: Path
    best: dict  # validation metrics of the weights kept
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    stopped: str = "epochs"
    model: object = None  # the fitted model (the weights kept), for evaluating without a reload
    task: HeadTask | VerbalizerTask | None = None  # how it reads examples and answers


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
    spec = load_task_spec(cfg.spec, cfg.labels)
    check_inputs(cfg, train, val, warm_start, spec)
    run = set_up(cfg, base_dir, train, val, warm_start, on_eval, spec)
    log.info("fit.start", train=len(run.train), val=len(run.val), steps=run.total_steps, method=cfg.method,
             trainable=sum(p.numel() for p in run.params))
    state = train_loop(run, progress)
    best = keep_chosen_weights(run, state)
    save_adapter(run.model, cfg, Path(out_dir), base_dir, best=best, stopped=state.stopped, spec=spec)
    seconds = time.monotonic() - run.t0
    log.info("fit.done", steps=state.step, seconds=round(seconds, 1), stopped=state.stopped,
             **{f"best_val_{cfg.primary_metric}": round(state.best_score, 4)})
    return FitResult(adapter_dir=Path(out_dir), best=best, history=state.history, steps=state.step,
                     seconds=seconds, stopped=state.stopped, model=run.model.eval(), task=run.task)


def check_inputs(cfg: TrainingSettings, train: Sequence[Example], val: Sequence[Example],
                 warm_start: Path | None, spec=None) -> None:
    if not train or not val:
        raise TrainingError(f"need training and validation examples, got {len(train)} and {len(val)}")
    if spec is not None and spec.head in CAUSAL_HEADS:
        if cfg.method not in ("lora", "qlora"):
            raise TrainingError(f"training.method {cfg.method!r} trains a classification head, and spec "
                                f"{spec.name!r} answers with label words; set training.method to lora or qlora")
        if cfg.frozen_layers:
            raise TrainingError(f"training.frozen_layers: spec {spec.name!r} answers with label words, which the "
                                "frozen layers' cache does not serve; set training.frozen_layers to 0")
    if warm_start is not None and (cfg.method in methods.NO_WARM_START or is_sparta_dir(warm_start)):
        raise TrainingError(f"training.warm_start: cannot continue from {warm_start} with method {cfg.method!r} "
                            "(SpaRTA-format adapters hold deltas against the base); set warm_start to false")


def set_up(cfg: TrainingSettings, base_dir: Path, train: Sequence[Example], val: Sequence[Example],
           warm_start: Path | None, on_eval: Callable[[dict], None] | None, spec=None) -> Run:
    """Seeds, the tokenized examples, the model and its optimizer, the loss, the frozen layers' cache."""
    from transformers import AutoTokenizer

    t0 = time.monotonic()
    set_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tok = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False)
    task = task_for(spec, tok, cfg.labels, cfg.max_length)
    tr, va = task.encode(train), task.encode(val)
    model = build_model(cfg, base_dir, cfg.labels, warm_start, causal=task.causal)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(cfg, params)
    dev = params[0].device
    weights = class_weights(cfg, tr.labels, len(cfg.labels))
    pad = tok.pad_token_id or 0
    return Run(cfg=cfg, model=model, task=task, params=params, optimizer=opt,
               loss_fn=torch.nn.CrossEntropyLoss(weight=None if weights is None else weights.to(dev)),
               train=tr, val=va, pad=pad, device=dev, rng=np.random.default_rng(cfg.seed), t0=t0,
               total_steps=total_steps(cfg, len(tr)),
               cache=fill_frozen_layers_cache(model, cfg, tr, pad, dev) if cfg.frozen_layers else None,
               average=WeightAverage(params, cfg.ema_decay) if cfg.ema_decay else None, on_eval=on_eval)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def total_steps(cfg: TrainingSettings, examples: int) -> int:
    per_epoch = math.ceil(examples / cfg.batch_size)
    return max(1, math.ceil(per_epoch * cfg.epochs / cfg.grad_accum))


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


def build_model(cfg: TrainingSettings, base_dir: Path, labels: Sequence[str], warm_start: Path | None = None,
                *, causal: bool = False):
    """A model whose trainable parameters are ``cfg.method``'s. With ``warm_start`` (a PEFT adapter, for
    methods that can continue from one), that adapter on top, with the pooling it was trained with.
    ``causal``: the base's language-model head scores the label words (no classification head)."""
    build = methods.method(cfg.method).build
    # Only lora and qlora build causal models; check_inputs refuses a causal spec for the others.
    model = build(cfg, base_dir, labels, warm_start, causal=True) if causal else build(cfg, base_dir, labels, warm_start)
    dev = train_device(cfg)
    if causal:
        return model if next(model.parameters()).device.type == dev.type else model.to(dev)
    if warm_start is not None:
        pooling = adapter_pooling(warm_start)
    else:
        pooling = base_pooling(base_dir) if cfg.pooling == "auto" else cfg.pooling
    # A 4-bit base is placed while it loads (and refuses .to); the others load on the CPU.
    if next(model.parameters()).device.type != dev.type:
        model = model.to(dev)
    return apply_pooling(model, pooling)


def make_optimizer(cfg: TrainingSettings, params: list) -> torch.optim.Optimizer:
    custom = getattr(methods.method(cfg.method), "optimizer", None)
    if custom is not None:
        return custom(params, cfg)
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


def fill_frozen_layers_cache(model, cfg: TrainingSettings, enc: Encoded, pad: int,
                             dev: torch.device) -> FrozenLayersCache:
    t0 = time.monotonic()
    cache = FrozenLayersCache(model, cfg.frozen_layers)
    order = np.argsort([len(s) for s in enc.input_ids], kind="stable")
    chunks = [order[s : s + 128] for s in range(0, len(order), 128)]
    batches = ((idx, on_device(enc, idx, pad, dev), [len(enc.input_ids[i]) for i in idx]) for idx in chunks)
    autocast = cfg.precision == "bf16"
    cache.fill(batches, len(enc), torch.bfloat16 if autocast else torch.float32, autocast)
    log.info("fit.prefix_cached", layers=cfg.frozen_layers, examples=len(enc), seconds=round(time.monotonic() - t0, 1))
    return cache


def keep_chosen_weights(run: Run, state: LoopState) -> dict:
    """Leave the weights ``training.keep`` chooses in the model; their validation metrics."""
    if run.cfg.keep == "last":
        if run.average:
            run.average.copy_to_model()
        return state.last
    if state.best_weights is not None:
        with torch.no_grad():
            named = dict(run.model.named_parameters())
            for k, v in state.best_weights.items():
                named[k].copy_(v)
    return state.best


def save_adapter(model, cfg: TrainingSettings, out_dir: Path, base_dir: Path, *, best: dict, stopped: str,
                 spec=None) -> None:
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
        **({"spec": spec.name, "head": spec.head} if spec is not None else {}),
        "hyperparameters": cfg.model_dump(mode="json", include={
            "max_length", "learning_rate", "weight_decay", "warmup_ratio", "batch_size", "grad_accum", "epochs",
            "class_weights", "early_stopping_patience", "keep", "precision", "max_train_seconds", "seed",
            "frozen_layers", "ema_decay", *method.HYPERPARAMETERS}),
        **extra,
        "best_val": {k: best.get(k) for k in ("accuracy", "macro_f1", "n")},
        "stopped": stopped,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    }
    (out_dir / TRAINING_META).write_text(json.dumps(meta, indent=2) + "\n")

"""A transformers sequence-classification model, optionally with a PEFT LoRA adapter."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from models.base import BatchResult
from models.batching import plan_batches
from models.errors import AdapterError, ModelLoadError
from models.pooling import adapter_pooling, apply_pooling
from models.runtime import Prefetcher, compile_forward, to_device, use_bf16
from models.spec import CompileMode

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
# Padded tokens per forward pass when model.token_budget is unset: 256 measured best on 2 CPU cores;
# on an H100, 8192 gave 3.6x the throughput of 256 (benchmarks/RESULTS.md, GPU memory table).
CPU_TOKEN_BUDGET, CUDA_TOKEN_BUDGET = 256, 8192


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("model.device is 'cuda' but no CUDA device is visible; use 'cpu' or 'auto'")
    return torch.device(device)


def check_adapter_dir(path: Path) -> dict:
    """Refuse adapters that are incomplete or stored as pickle (arbitrary code on load)."""
    cfg = path / "adapter_config.json"
    if not cfg.is_file():
        raise AdapterError(f"adapter {path}: adapter_config.json is missing")
    pickles = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise AdapterError(
            f"adapter {path}: pickle weights {pickles} are refused; re-save with safe_serialization=True"
        )
    if not (path / "adapter_model.safetensors").is_file():
        raise AdapterError(f"adapter {path}: adapter_model.safetensors is missing")
    return json.loads(cfg.read_text())


class SequenceClassifier:
    """Batched inference with a classification head; the head survives adapter reloads because
    PEFT saves it through ``modules_to_save``."""

    def __init__(
        self,
        model_dir: Path,
        *,
        adapter_dir: Path | None = None,
        adapter_version: str | None = None,
        labels: Sequence[str] | None = None,
        device: str = "auto",
        max_length: int = 128,
        model_version: str | None = None,
        token_budget: int | None = None,
        compile: CompileMode = "none",
        overlap_host_work: bool = False,
        precision: str = "fp32",
    ) -> None:
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise ModelLoadError(f"model.path {model_dir}: config.json is missing")
        self.device = resolve_device(device)
        self.max_length = max_length
        self.token_budget = token_budget or (CUDA_TOKEN_BUDGET if self.device.type == "cuda" else CPU_TOKEN_BUDGET)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
        kwargs = {"trust_remote_code": False, "use_safetensors": True}
        if labels is not None:
            kwargs |= {
                "num_labels": len(labels),
                "id2label": dict(enumerate(labels)),
                "label2id": {n: i for i, n in enumerate(labels)},
            }
        # A base model without a trained head gets a freshly initialised one; seed it so every
        # replica and restart agrees.
        torch.manual_seed(0)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(model_dir, **kwargs)
        except OSError as e:
            raise ModelLoadError(f"model.path {model_dir}: {e}") from None
        if adapter_dir is not None:
            model = apply_pooling(self._attach_adapter(model, Path(adapter_dir)), adapter_pooling(Path(adapter_dir)))
        self.model = compile_forward(model.to(self.device).eval(), compile, self.device)
        self.bf16 = use_bf16(precision, self.device)
        self.prefetcher = Prefetcher() if overlap_host_work else None
        cfg = self.model.config
        self.labels = tuple(cfg.id2label[i] for i in range(cfg.num_labels))
        if labels is not None and tuple(labels) != self.labels:
            raise ModelLoadError(f"model.labels {list(labels)} do not match the model's {list(self.labels)}")
        self.model_version = model_version or model_dir.name
        self.adapter_version = adapter_version if adapter_dir is not None else None

    @staticmethod
    def _attach_adapter(model, adapter_dir: Path):
        from peft import PeftModel

        check_adapter_dir(adapter_dir)
        try:
            return PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
        except (ValueError, RuntimeError, KeyError) as e:
            raise AdapterError(f"adapter {adapter_dir} does not fit model: {e}") from None

    @torch.inference_mode()
    def classify(self, texts: Sequence[str]) -> BatchResult:
        # Sorted by length and cut at a padded-token budget, so short texts stop paying for the
        # longest one in their batch (SST-2 at 32 per batch: 3.2x padded tokens, 1.6x this way).
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]

        def build(rows: list[int]) -> tuple[list[int], dict]:
            enc = self.tokenizer.pad({"input_ids": [ids[i] for i in rows]}, padding=True,
                                     pad_to_multiple_of=8, return_tensors="pt")
            return rows, to_device(dict(enc), self.device)

        # The next forward pass's inputs are padded (and copied, on CUDA) while this one runs.
        plan = plan_batches([len(x) for x in ids], self.token_budget)
        pending = []
        for rows, enc in self.prefetcher.map(build, plan) if self.prefetcher else map(build, plan):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits = self.model(**enc).logits
            pending.append((rows, torch.softmax(logits.float(), dim=-1)))
        probs = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        for rows, p in pending:
            probs[rows] = p.cpu().numpy()
        return BatchResult(probs=probs, adapter_versions=(self.adapter_version,) * len(texts))

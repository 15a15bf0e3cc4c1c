"""A :class:`models.base.Classifier` for any :class:`ModelSpec`: prompt, token-budget batches, head."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from models.base import BatchResult
from models.batching import plan_batches
from models.build import Loaded, load_model
from models.heads import GenerateHead, SequenceClassificationHead, VerbalizerHead
from models.prompt import PromptRenderer
from models.spec import ModelSpec


class SpecClassifier:
    def __init__(self, spec: ModelSpec, loaded: Loaded | None = None) -> None:
        loaded = loaded or load_model(spec)
        self.spec = spec
        self.model, self.tokenizer, self.device = loaded.model, loaded.tokenizer, loaded.device
        self.adapter_version = loaded.adapter_version
        self.labels = spec.label_names
        self.model_version = spec.name
        self.renderer = PromptRenderer(spec, self.tokenizer)
        if spec.head == "sequence_classification":
            self.head = SequenceClassificationHead()
        else:
            self.label_token_ids = self.renderer.label_token_ids()
            self.verbalizer = VerbalizerHead(self.model, self.label_token_ids)
            self.generator = GenerateHead(spec, self.tokenizer, spec.prompt.answer_prefix + self.renderer.answer_sep)
            self.head = self.verbalizer if spec.head == "causal_lm_verbalizer" else self.generator

    def _batches(self, texts: Sequence[str]):
        ids = self.renderer.encode(list(texts))
        rt = self.spec.runtime
        for rows in plan_batches([len(x) for x in ids], rt.token_budget, rt.pad_to_multiple_of):
            enc = self.tokenizer.pad({"input_ids": [ids[i] for i in rows]}, padding=True,
                                     pad_to_multiple_of=rt.pad_to_multiple_of, return_tensors="pt")
            if self.device.type == "cuda":
                enc = {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in enc.items()}
            else:
                enc = dict(enc)
            yield rows, enc

    @torch.inference_mode()
    def scores(self, texts: Sequence[str], head=None) -> torch.Tensor:
        """Label logits (n, k) float32 in input order."""
        head = head or self.head
        out = torch.empty(len(texts), len(self.labels))
        for rows, enc in self._batches(texts):
            out[torch.tensor(rows)] = head(self.model, enc).float().cpu()
        return out

    @torch.inference_mode()
    def generate_labels(self, texts: Sequence[str]) -> list[int | None]:
        """Greedy generation + pattern, whatever the spec's head (causal heads only); None = no label."""
        out: list[int | None] = [None] * len(texts)
        for rows, enc in self._batches(texts):
            for i, text in zip(rows, self.generator.generate_text(self.model, enc), strict=True):
                out[i] = self.generator.parse(text)
        return out

    def classify(self, texts: Sequence[str]) -> BatchResult:
        if not texts:
            return BatchResult(np.zeros((0, len(self.labels)), np.float32), ())
        probs = torch.softmax(self.scores(texts), dim=-1).numpy().astype(np.float32, copy=False)
        return BatchResult(probs=probs, adapter_versions=(self.adapter_version,) * len(texts))

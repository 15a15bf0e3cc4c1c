"""A :class:`models.base.Classifier` for any :class:`ModelSpec`: prompt, token-budget batches, head."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from models.base import BatchResult
from models.batching import default_token_budget, pad_batch, plan_batches
from models.build import Loaded, load_model
from models.heads import GenerateHead, SequenceClassificationHead, VerbalizerHead
from models.languages import LanguageSupport
from models.prefix import PrefixCache, shared_prefix, supports_prefix_cache
from models.prompt import PromptRenderer
from models.runtime import Prefetcher, compile_forward, to_device, use_bf16
from models.spec import ModelSpec


class SpecClassifier:
    def __init__(self, spec: ModelSpec, loaded: Loaded | None = None) -> None:
        loaded = loaded or load_model(spec)
        self.spec = spec
        self.model, self.tokenizer, self.device = loaded.model, loaded.tokenizer, loaded.device
        self.adapter_version = loaded.adapter_version
        self.adapter_versions = loaded.adapter_versions or {"default": loaded.adapter_version}
        self.sparta_set = loaded.sparta_set
        self.labels = spec.label_names
        self.model_version = spec.name
        self.language_support = LanguageSupport.of(spec)
        self.renderer = PromptRenderer(spec, self.tokenizer)
        if spec.head == "sequence_classification":
            self.head = SequenceClassificationHead()
        else:
            self.label_token_ids = self.renderer.label_token_ids()
            self.verbalizer = VerbalizerHead(self.model, self.label_token_ids)
            self.generator = GenerateHead(spec, self.tokenizer, spec.prompt.answer_prefix + self.renderer.answer_sep)
            self.head = self.verbalizer if spec.head == "causal_lm_verbalizer" else self.generator
        self.prefix = self._prefix_cache() if spec.head == "causal_lm_verbalizer" else None
        # After the adapters are applied; the prefix cache, built above, keeps the eager backbone.
        mode = spec.runtime.compile
        if spec.head == "sequence_classification":
            self.model = compile_forward(self.model, mode, self.device)
        else:
            self.verbalizer.backbone = compile_forward(self.verbalizer.backbone, mode, self.device)
        self.prefetcher = Prefetcher() if spec.runtime.overlap_host_work else None
        self.token_budget = spec.runtime.token_budget or default_token_budget(self.device)
        # bf16 or quantized weights bring their own compute dtype.
        self.bf16 = spec.quantization.mode == "none" and use_bf16(spec.runtime.autocast, self.device)

    def _prefix_cache(self, min_tokens: int = 8) -> PrefixCache | None:
        # The cached keys/values depend on the adapter, so one cache serves one adapter only.
        if (not self.spec.runtime.prefix_cache or self.spec.adapters
                or not supports_prefix_cache(self.verbalizer.backbone.config)):
            return None
        ids = shared_prefix(self.renderer.encode(["a", "b c", "the end", "0"]))
        # Keep one token of slack: the text's first token may merge with the one before it.
        ids = ids[:-1]
        return PrefixCache(self.verbalizer.backbone, ids, self.device) if len(ids) >= min_tokens else None

    def _batches(self, texts: Sequence[str], ids: list[list[int]] | None = None, side: str | None = None):
        """``(rows, device inputs)`` per planned forward pass; with ``runtime.overlap_host_work`` the
        next pass's inputs are built in the background while the caller runs the current one."""
        ids = self.renderer.encode(list(texts)) if ids is None else ids
        rt = self.spec.runtime
        side = side or self.tokenizer.padding_side

        def build(rows: list[int]) -> tuple[list[int], dict]:
            enc = pad_batch([ids[i] for i in rows], self.tokenizer.pad_token_id, rt.pad_to_multiple_of, side)
            return rows, to_device(enc, self.device)

        plan = plan_batches([len(x) for x in ids], self.token_budget, rt.pad_to_multiple_of)
        return self.prefetcher.map(build, plan) if self.prefetcher else map(build, plan)

    def _verbalize_with_prefix(self, texts: Sequence[str], out: list) -> list[int]:
        """Scores rows that start with the cached prefix (appended to ``out``); returns the other rows."""
        ids = self.renderer.encode(list(texts))
        hit = [i for i, x in enumerate(ids) if self.prefix.matches(x)]
        p = self.prefix.length
        for rows, enc in self._batches([], [ids[i][p:] for i in hit], side="right"):
            hidden = self.prefix.last_hidden(enc["input_ids"], enc["attention_mask"])
            out.append(([hit[r] for r in rows], self.verbalizer.label_logits(hidden)))
        hits = set(hit)
        return [i for i in range(len(texts)) if i not in hits]

    @torch.inference_mode()
    def scores(self, texts: Sequence[str], head=None, adapter_names: Sequence[str] | None = None) -> torch.Tensor:
        """Label logits (n, k) float32 in input order; ``adapter_names`` routes each row (multi-adapter)."""
        head = head or self.head
        # Results stay on the device until every batch is queued, so padding and copying the next
        # batch on the host overlaps the device's work on the previous one.
        pending: list[tuple[list[int], torch.Tensor]] = []
        rest = list(range(len(texts)))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            if self.prefix is not None and head is self.verbalizer:
                rest = self._verbalize_with_prefix(texts, pending)
            if rest and self.sparta_set is not None and adapter_names is not None:
                # SpaRTA adapters are switched into the weights: one group of rows per adapter.
                for name in dict.fromkeys(adapter_names[i] for i in rest):
                    with self.sparta_set.using(name):
                        self._run([i for i in rest if adapter_names[i] == name], texts, head, None, pending)
            elif rest:
                self._run(rest, texts, head, adapter_names, pending)
        out = torch.empty(len(texts), len(self.labels))
        for idx, logits in pending:
            out[torch.tensor(idx)] = logits.cpu()
        return out

    def _run(self, rest: list[int], texts: Sequence[str], head, adapter_names, pending: list) -> None:
        for rows, enc in self._batches([texts[i] for i in rest]):
            idx = [rest[r] for r in rows]
            names = None if adapter_names is None else [adapter_names[i] for i in idx]
            pending.append((idx, head(self.model, enc, names).float()))

    @property
    def routed(self) -> bool:
        """True when routes pick an adapter per message: the daemon then passes each message's attributes."""
        return bool(self.spec.adapters)

    def route(self, attrs: Sequence[dict] | None, n: int) -> list[str] | None:
        """Adapter name per message from the spec's routes (None: the single default adapter)."""
        if attrs is None or not self.spec.adapters:
            return None
        if len(attrs) != n:
            raise ValueError(f"{len(attrs)} attribute rows for {n} texts")
        return [self.spec.route(a) for a in attrs]

    @torch.inference_mode()
    def generate_labels(self, texts: Sequence[str]) -> list[int | None]:
        """Greedy generation + pattern, whatever the spec's head (causal heads only); None = no label."""
        out: list[int | None] = [None] * len(texts)
        for rows, enc in self._batches(texts):
            for i, text in zip(rows, self.generator.generate_text(self.model, enc), strict=True):
                out[i] = self.generator.parse(text)
        return out

    def classify(self, texts: Sequence[str], attrs: Sequence[dict] | None = None) -> BatchResult:
        """``attrs``: per message ``{"source": ..., "lang": ..., "topic": ...}`` for adapter routing;
        a batch may mix adapters."""
        if not texts:
            return BatchResult(np.zeros((0, len(self.labels)), np.float32), ())
        names = self.route(attrs, len(texts))
        probs = torch.softmax(self.scores(texts, adapter_names=names), dim=-1).numpy().astype(np.float32, copy=False)
        if names is None:
            versions = (self.adapter_version,) * len(texts)
        else:
            versions = tuple(self.adapter_versions[n] for n in names)
        return BatchResult(probs=probs, adapter_versions=versions)

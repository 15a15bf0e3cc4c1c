"""The three ways a model turns a padded batch into label scores.

- :class:`SequenceClassificationHead`: the model's own classification head (``logits``),
- :class:`VerbalizerHead`: one forward pass of the causal LM's backbone; only the last position's
  hidden state is multiplied with the label tokens' rows of ``lm_head`` (k x hidden, never vocab-sized),
- :class:`GenerateHead`: greedy generation, then a regex finds the label word in the answer.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from models.errors import UnparseableAnswerError
from models.spec import ModelSpec


def padding_side_for(head: str) -> str:
    return "right" if head == "sequence_classification" else "left"


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class SequenceClassificationHead:
    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor], adapter_names=None) -> torch.Tensor:
        extra = {"adapter_names": adapter_names} if adapter_names is not None else {}
        return model(**batch, **extra).logits.float()


class VerbalizerHead:
    """Expects left padding: the answer position is then the last column of every row."""

    def __init__(self, model: nn.Module, label_token_ids: list[list[int]]) -> None:
        lm = unwrap(model)
        self.backbone = lm.base_model
        self.token_ids = torch.tensor([ids[0] for ids in label_token_ids])
        # The module, not a copy of its k rows: the rows are gathered per call (k x hidden, cheap).
        self.lm_head = lm.get_output_embeddings()
        self.softcap = getattr(lm.config, "final_logit_softcapping", None)
        self.routing = None
        if lm is not model:
            # peft's private per-row adapter routing; the import checks the installed peft, at load.
            from models.peft_internals import adapter_routing

            self.routing = adapter_routing

    def label_logits(self, hidden_last: torch.Tensor) -> torch.Tensor:
        ids = self.token_ids.to(hidden_last.device)
        w = self.lm_head.weight[ids]
        logits = hidden_last.to(w.dtype) @ w.T
        if getattr(self.lm_head, "bias", None) is not None:
            logits = logits + self.lm_head.bias[ids]
        logits = logits.float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor], adapter_names=None) -> torch.Tensor:
        # Left padding: count positions from each row's first real token, as unpadded inputs would.
        positions = (batch["attention_mask"].long().cumsum(-1) - 1).clamp(min=0)
        if adapter_names is None:
            out = self.backbone(**batch, position_ids=positions, use_cache=False)
        else:
            # Mixed-adapter batches: each row through its own adapter, around the backbone alone.
            with self.routing(model, adapter_names):
                out = self.backbone(**batch, position_ids=positions, use_cache=False)
        return self.label_logits(out.last_hidden_state[:, -1])


class GenerateHead:
    def __init__(self, spec: ModelSpec, tokenizer, answer_prefix: str) -> None:
        self.pattern = re.compile(spec.generate.pattern, re.IGNORECASE | re.DOTALL)
        self.max_new_tokens = spec.generate.max_new_tokens
        self.tokenizer = tokenizer
        self.answer_prefix = answer_prefix
        self.words = {lab.word.lower(): i for i, lab in enumerate(spec.labels)}
        self.num_labels = len(spec.labels)

    def generate_text(self, model: nn.Module, batch: dict[str, torch.Tensor], adapter_names=None) -> list[str]:
        kw = dict(max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
        if adapter_names is None:
            out = unwrap(model).generate(**batch, **kw)
        else:
            out = model.generate(**batch, adapter_names=adapter_names, **kw)
        new = out[:, batch["input_ids"].shape[1]:]
        return [self.answer_prefix + t for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def parse(self, text: str) -> int | None:
        m = self.pattern.search(text)
        return None if m is None else self.words.get(m.group("label").strip().lower())

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor], adapter_names=None) -> torch.Tensor:
        texts = self.generate_text(model, batch, adapter_names)
        ids = [self.parse(t) for t in texts]
        bad = [i for i, v in enumerate(ids) if v is None]
        if bad:
            raise UnparseableAnswerError(
                f"{len(bad)} of {len(ids)} generated answers name no label (rows {bad[:10]}); "
                "check generate.pattern and the labels' verbalizer words"
            )
        scores = torch.full((len(ids), self.num_labels), -1e4)
        scores[torch.arange(len(ids)), torch.tensor(ids)] = 0.0
        return scores

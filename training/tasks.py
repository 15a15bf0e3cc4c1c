"""What a fit teaches the model, and how it reads the model's answer.

- :class:`HeadTask`: the raw text into a sequence-classification head (``logits``),
- :class:`VerbalizerTask`: a causal-LM spec's prompt (system prompt, chat template, answer prefix),
  scored by the label words' logits at the answer position in one forward pass: the head the daemon
  serves (``models.heads.VerbalizerHead``), so the adapter learns exactly what is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from training.batches import Encoded
from training.errors import TrainingError
from training.readers import Example

CAUSAL_HEADS = ("causal_lm_verbalizer", "causal_lm_generate")


def label_ids(examples: Sequence[Example], labels: Sequence[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(labels)}
    return np.array([index[e.label] for e in examples], dtype=np.int64)


@dataclass
class HeadTask:
    tokenizer: object
    labels: tuple[str, ...]
    max_length: int
    causal = False

    def encode(self, examples: Sequence[Example]) -> Encoded:
        ids = self.tokenizer([e.text for e in examples], truncation=True, max_length=self.max_length)["input_ids"]
        return Encoded(ids, label_ids(examples, self.labels))

    def scores(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**batch).logits


class VerbalizerTask:
    causal = True

    def __init__(self, spec, tokenizer, labels: tuple[str, ...]) -> None:
        from models.errors import SpecError
        from models.prompt import PromptRenderer

        self.labels = labels
        self.tokenizer = tokenizer
        try:
            self.renderer = PromptRenderer(spec, tokenizer)
            self.token_ids = self.renderer.label_token_ids()
        except SpecError as e:
            raise TrainingError(f"training.spec: {e}") from None
        self._head, self._head_of = None, None

    def encode(self, examples: Sequence[Example]) -> Encoded:
        ids = self.renderer.encode([e.text for e in examples])
        return Encoded(ids, label_ids(examples, self.labels), pad_left=True)

    def scores(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self._head_of is not model:
            from models.heads import VerbalizerHead

            self._head, self._head_of = VerbalizerHead(model, self.token_ids), model
        return self._head(model, batch)


def load_task_spec(name: str | None, labels: Sequence[str]):
    """The spec ``training.spec`` names (None when unset), its labels checked against ``training.labels``."""
    if name is None:
        return None
    from models.errors import SpecError
    from models.spec import load_spec

    try:
        spec = load_spec(name)
    except SpecError as e:
        raise TrainingError(f"training.spec: {e}") from None
    if tuple(labels) != spec.label_names:
        raise TrainingError(f"training.labels {list(labels)} differ from spec {spec.name!r}'s "
                            f"{list(spec.label_names)}; set training.labels to the spec's")
    return spec


def task_for(spec, tokenizer, labels: Sequence[str], max_length: int) -> HeadTask | VerbalizerTask:
    """The spec's prompt and label words for a causal-LM spec; else the text into a head."""
    if spec is not None and spec.head in CAUSAL_HEADS:
        return VerbalizerTask(spec, tokenizer, tuple(labels))
    return HeadTask(tokenizer, tuple(labels), max_length)


def predict_examples(model, task: HeadTask | VerbalizerTask, examples: Sequence[Example]) -> np.ndarray:
    """Class probabilities of each example, in input order."""
    from training.batches import predict

    return predict(task.scores, model, task.encode(examples), task.tokenizer.pad_token_id or 0, len(task.labels))


def evaluate_examples(model, task: HeadTask | VerbalizerTask, examples: Sequence[Example]) -> dict:
    from training.metrics import compute_metrics

    probs = predict_examples(model, task, examples)
    return compute_metrics(label_ids(examples, task.labels), probs.argmax(1), task.labels)

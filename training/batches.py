"""Tokenized examples, length-bucketed batches, and class probabilities in input order.

Length-bucketed batches: short texts dominate sentiment data and padding to the batch maximum
wastes most CPU time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Encoded:
    input_ids: list[list[int]]
    labels: np.ndarray
    # A causal LM's answer position is the last column of every row only with left padding.
    pad_left: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)


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
        cols = slice(width - len(s), width) if enc.pad_left else slice(0, len(s))
        ids[r, cols] = torch.tensor(s)
        mask[r, cols] = 1
    return {"input_ids": ids, "attention_mask": mask}


def on_device(enc: Encoded, idx: Sequence[int], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in collate(enc, idx, pad_id).items()}


@torch.inference_mode()
def predict(scores: Callable, model, enc: Encoded, pad_id: int, num_labels: int, batch_size: int = 128) -> np.ndarray:
    """Class probabilities in input order; ``scores(model, batch)`` gives a batch's label logits."""
    was_training = model.training
    model.eval()
    order = np.argsort([len(s) for s in enc.input_ids], kind="stable")
    out = np.zeros((len(enc), num_labels), dtype=np.float32)
    dev = next(model.parameters()).device
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        out[idx] = torch.softmax(scores(model, on_device(enc, idx, pad_id, dev)).float(), -1).cpu().numpy()
    model.train(was_training)
    return out

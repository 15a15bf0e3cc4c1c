"""The labels table as one refit reads it: train, validation and gold slices, the labels since the
last refit, and a replay window that keeps the cost of a refit flat however many labels pile up."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from schemas.settings import TrainingSettings
from training import labels as label_store
from training.outcome import Counts
from training.readers import Example
from training.splits import three_way


@dataclass(frozen=True)
class Dataset:
    """The labels table as one refit reads it."""
    train: list[Example]  # the replay window of the training slice
    val: list[Example]
    gold: list[Example]
    new_train: list[Example]  # training-slice labels since the last refit, before the window
    labels: int  # usable labels read
    gold_slice_ignored: int  # gold-slice messages labelled only by untrusted labelers
    watermark: int  # the highest labels.id read

    def counts(self) -> Counts:
        return Counts(train=len(self.train), val=len(self.val), gold=len(self.gold),
                      gold_slice_ignored=self.gold_slice_ignored, new_labels_checked=len(self.new_train))

    def label_counts(self) -> dict[str, int]:
        """Examples per label in the training set: the console's drift check compares live shares to it."""
        return dict(sorted(Counter(e.label for e in self.train).items()))


def read_dataset(engine: Engine, cfg: TrainingSettings, since: int) -> Dataset:
    """Every usable label split three ways; ``since``: the watermark of the last refit."""
    examples, watermark = label_store.load_examples(engine, cfg.labels)
    train, val, gold = three_way(examples, cfg.gold_fraction, cfg.val_fraction, cfg.gold_labelers)
    fresh = label_store.ids_since(engine, since)
    ignored = len({e.message_id for e in examples}) - len(train) - len(val) - len(gold)
    new_train = [e for e in train if e.message_id in fresh]
    return Dataset(window(train, cfg), val, gold, new_train, len(examples), ignored, watermark)


def window(train: list, cfg: TrainingSettings) -> list:
    """The newest ``window_labels`` examples plus a seeded random replay of older ones."""
    if not cfg.window_labels or len(train) <= cfg.window_labels:
        return train
    recent, older = train[-cfg.window_labels:], train[:-cfg.window_labels]
    rng = random.Random(cfg.seed)
    return rng.sample(older, min(cfg.replay_labels, len(older))) + recent

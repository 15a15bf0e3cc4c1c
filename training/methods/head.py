"""Head-only: everything frozen but the classification head (and pooler, per ``modules_to_save``).
Saved as a SpaRTA-format adapter whose only deltas are the head's, so models/ serves it with
``adapter.kind: sparta`` (merged at load, no cost per message)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from schemas.settings import TrainingSettings
from training.methods import sparta
from training.methods.common import freeze_all_but_head, load_base

HYPERPARAMETERS = ("modules_to_save",)


def build(cfg: TrainingSettings, base_dir: Path, labels: Sequence[str], warm_start: None = None):
    """``warm_start`` is never given (see training.methods.NO_WARM_START)."""
    model = load_base(base_dir, labels, serving_init=True)
    model.sentistream_head_init = freeze_all_but_head(model, cfg.modules_to_save)
    return model


save = sparta.save

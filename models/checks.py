"""Start-up checks: each failure is a clear error naming the file or spec field to fix."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from models.errors import AdapterError, ChecksumError, ModelLoadError, UnsafeModelError
from models.spec import BaseModelSpec

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def adapter_sha256(path: str | Path) -> str:
    """The checksum the registry and specs use for an adapter.

    A file: sha256 of its bytes. A directory: sha256 over every regular file, in sorted relative-path
    order, of ``<relative path>\\0<file sha256>\\n`` — so renaming, adding or editing any file changes it.
    """
    path = Path(path)
    if path.is_file():
        return _file_sha256(path)
    if not path.is_dir():
        raise AdapterError(f"adapter {path}: no such file or directory")
    outer = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        outer.update(f"{rel}\0{_file_sha256(f)}\n".encode())
    return outer.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_sha256(path: Path, expected: str | None) -> None:
    if expected is None:
        return
    actual = adapter_sha256(path)
    if actual != expected:
        raise ChecksumError(
            f"adapter {path}: sha256 is {actual} but adapter.sha256 expects {expected}; "
            "the files changed since they were registered (re-register the adapter or fix the path)"
        )


def refuse_pickles(path: Path, what: str) -> None:
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise UnsafeModelError(
            f"{what} {path}: pickle files {pickles} are refused (loading them can run code); "
            "re-save the weights as .safetensors (save_pretrained(..., safe_serialization=True))"
        )


HEAD_WEIGHTS = ("score.weight", "classifier.weight")


def base_head_rows(base_dir: Path) -> int | None:
    """Rows of a trained classification head stored in a local checkpoint, if any."""
    from safetensors import safe_open

    for f in sorted(Path(base_dir).glob("*.safetensors")):
        with safe_open(f, framework="pt") as st:
            for k in st.keys():
                if k in HEAD_WEIGHTS:
                    return int(st.get_slice(k).get_shape()[0])
    return None


def check_local_base(base: BaseModelSpec) -> dict:
    """For a local base directory: config present, no remote code, safetensors weights. Returns config.json."""
    path = Path(base.id).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"base.id {base.id!r}: directory does not exist")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ModelLoadError(f"base.id {base.id!r}: config.json is missing (not a transformers model directory)")
    config = json.loads(cfg_file.read_text())
    check_no_remote_code(config, f"base.id {base.id!r}")
    if not any(path.glob("*.safetensors")):
        found = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        hint = f" (found pickle weights {found}, refused)" if found else ""
        raise UnsafeModelError(f"base.id {base.id!r}: no .safetensors weights{hint}; convert the checkpoint to safetensors")
    if base.model_type and config.get("model_type") != base.model_type:
        raise ModelLoadError(
            f"base.model_type is {base.model_type!r} but {cfg_file} says {config.get('model_type')!r}; "
            "point base.id at the right model or fix base.model_type"
        )
    return config


def check_no_remote_code(config: dict, what: str) -> None:
    if config.get("auto_map"):
        raise UnsafeModelError(
            f"{what}: the model needs trust_remote_code (config.json has auto_map {sorted(config['auto_map'])}); "
            "remote code is never run — use a model supported natively by transformers"
        )


def same_base(recorded: str | None, base: BaseModelSpec) -> bool:
    """Whether an adapter's recorded base (hub id or path) names the spec's base.

    Hub ids and directories match on their last path component, since a hub model is often used
    from a local snapshot directory named after it.
    """
    if not recorded:
        return True  # nothing recorded: the weight shapes are still checked on load
    a, b = recorded.rstrip("/"), base.id.rstrip("/")
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if pa.exists() and pb.exists() and pa.resolve() == pb.resolve():
        return True
    return pa.name.lower() == pb.name.lower()


def check_adapter_base(recorded: str | None, base: BaseModelSpec, adapter_path: Path, field: str) -> None:
    if not same_base(recorded, base):
        raise AdapterError(
            f"adapter {adapter_path} was made for base model {recorded!r} ({field}), "
            f"but the spec's base.id is {base.id!r}; use an adapter trained on this base or change base.id"
        )

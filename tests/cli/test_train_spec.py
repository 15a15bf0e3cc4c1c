"""``sentistream train --set spec=...``: a causal-LM card's prompt and label words trained from a file
and served by ``sentistream classify`` with the same preset, both as subprocesses."""

from __future__ import annotations

import json

import pytest

from tests.cli.runner import clean_env, json_lines, sentistream
from tests.models.factories import build_causal_base

LABELS = ("negative", "neutral", "positive")
TEXTS = {"negative": "terrible bad service", "neutral": "the day at the beach", "positive": "great happy movie"}


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return build_causal_base(tmp_path_factory.mktemp("llama"), "llama")


def write_rows(path, n: int) -> None:
    rows = ["sentence\tlabel"] + [f"{TEXTS[lab]} {i}\t{lab}" for i in range(n) for lab in LABELS]
    path.write_text("\n".join(rows) + "\n")


def train(tmp_path, llama_dir, *settings: str):
    # A tiny llama (the s1 card's architecture) and one epoch keep the run to seconds; the path through
    # the CLI is the one a real base takes. val_fraction: 5% of 60 rows may hash to no validation row.
    return sentistream("train", "--train-file", str(tmp_path / "train.tsv"), "--eval-file", str(tmp_path / "eval.tsv"),
                       "--out", str(tmp_path / "adapter"), "--labels", ",".join(LABELS),
                       "--set", "spec=s1", "--set", f"base_model={llama_dir}", "--set", "epochs=1",
                       "--set", "val_fraction=0.2", "--set", "target_modules=[\"k_proj\",\"v_proj\"]", *settings,
                       cwd=tmp_path)


def test_a_card_trained_from_a_file_is_served_by_classify(tmp_path, llama_dir):
    write_rows(tmp_path / "train.tsv", 20)
    write_rows(tmp_path / "eval.tsv", 3)
    proc = train(tmp_path, llama_dir)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["eval"]["n"] == 9 and summary["steps"] >= 1
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM"

    # fp32: the adapter was trained on the fp32 base (the preset's nf4 is for real weights).
    env = clean_env(SENTISTREAM_MODEL__PRESET="s1", SENTISTREAM_MODEL__PATH=str(llama_dir),
                    SENTISTREAM_MODEL__ADAPTER_PATH=str(tmp_path / "adapter"), SENTISTREAM_MODEL__PRECISION="fp32",
                    SENTISTREAM_MODEL__DEVICE="cpu")
    proc = sentistream("classify", env=env, stdin="\n".join(TEXTS.values()).encode() + b"\n")
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    rows = json_lines(proc.stdout)
    assert len(rows) == 3 and {r["label"] for r in rows} <= set(LABELS)


@pytest.mark.parametrize(("setting", "named"), [
    ("method=sparta", "training.method"),
    ("frozen_layers=1", "training.frozen_layers"),
])
def test_what_a_card_cannot_train_is_one_line(tmp_path, llama_dir, setting, named):
    write_rows(tmp_path / "train.tsv", 20)
    write_rows(tmp_path / "eval.tsv", 1)
    proc = train(tmp_path, llama_dir, "--set", setting)
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and named in err[0], err
    assert not (tmp_path / "adapter").exists()

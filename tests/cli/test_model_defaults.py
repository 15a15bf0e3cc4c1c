"""The model a new user gets with no settings: the default preset (MiniLM + the shipped SST-2 adapter),
through the real ``sentistream classify``; and a model.path without a trained head refused in one line."""

from __future__ import annotations

import csv

import pytest
from transformers import BertModel

from tests.cli.runner import clean_env, json_lines, sentistream
from tests.factories import copy_tokenizer


def sst2_dev(data_dir) -> tuple[list[str], list[str]]:
    """The 872 GLUE SST-2 dev sentences and their gold labels (0 negative, 1 positive; see SOURCE.md)."""
    with open(data_dir / "sst2" / "dev.tsv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["sentence"] for r in rows], [("negative", "positive")[int(r["label"])] for r in rows]


def classify_stdin(texts: list[str], **settings: str) -> list[str]:
    proc = sentistream("classify", env=clean_env(**settings), stdin="".join(t + "\n" for t in texts).encode())
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    rows = json_lines(proc.stdout)
    assert [r["message_id"] for r in rows] == [str(i) for i in range(len(texts))]
    assert {r["adapter_version"] for r in rows} == {"minilm-sst2"}
    return [r["label"] for r in rows]


def test_no_settings_scores_sst2_dev_like_the_default_preset(data_dir):
    texts, gold = sst2_dev(data_dir)
    assert len(texts) == 872
    default = classify_stdin(texts)
    accuracy = sum(a == b for a, b in zip(default, gold, strict=True)) / len(gold)
    assert accuracy >= 0.90, accuracy
    # Non-default on purpose: the default must equal the preset named explicitly.
    assert classify_stdin(texts, SENTISTREAM_MODEL__PRESET="minilm-lora-sst2") == default


def test_no_settings_answers_with_the_shipped_adapter():
    proc = sentistream("classify", "I love this", "worst service ever")
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    rows = json_lines(proc.stdout)
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert [r["adapter_version"] for r in rows] == ["minilm-sst2", "minilm-sst2"]
    assert all(r["model_version"] == "minilm-lora-sst2" for r in rows)


@pytest.fixture
def headless_bert(tiny_bert_dir, tmp_path):
    """A base model as hub checkpoints come: an encoder without a classification head."""
    out = tmp_path / "headless-bert"
    BertModel.from_pretrained(tiny_bert_dir).save_pretrained(out, safe_serialization=True)
    copy_tokenizer(tiny_bert_dir, out)
    return out


def test_model_path_without_a_trained_head_is_refused_in_one_line(headless_bert):
    # Non-default on purpose: the failure a user meets who points model.path at a base model.
    proc = sentistream("classify", "hello", env=clean_env(SENTISTREAM_MODEL__PATH=str(headless_bert)))
    assert proc.returncode == 2
    assert json_lines(proc.stdout) == []
    errors = [line for line in proc.stderr.decode().splitlines() if "error" in line.lower()]
    assert errors == [
        f"sentistream: error: model.path {headless_bert} has no trained classification head and no adapter is "
        "set: set model.adapter_path (SENTISTREAM_MODEL__ADAPTER_PATH) to a trained adapter, or unset model.path "
        "(SENTISTREAM_MODEL__PATH) to serve the default minilm-lora-sst2"
    ], proc.stderr.decode()[-2000:]

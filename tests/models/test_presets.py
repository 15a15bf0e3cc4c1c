"""Every preset, on a tiny random model of its architecture with a real adapter of its kind and
target modules, loaded through the preset and checked against a plain reference computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerFast

from models.classifier import SpecClassifier
from models.prompt import PromptRenderer
from models.spec import load_spec
from tests.models.factories import (
    TOL,
    lora_for,
    make_labels_answerable,
    preset_on,
    random_texts,
    reference_seq_cls,
    save_sparta_adapter,
)

N_AGREE = 200


@torch.no_grad()
def reference_verbalizer(model, tok, renderer, texts, label_ids):
    rows = []
    for t in texts:
        enc = tok(renderer.render(t), add_special_tokens=renderer.add_special_tokens, return_tensors="pt")
        rows.append(model(**enc).logits[0, -1, label_ids])
    return torch.stack(rows).float()


@pytest.mark.parametrize(
    ("preset", "arch"),
    [("s2", "gemma2"), ("s4", "gpt2")],
)
def test_lora_seq_cls_preset_matches_peft_merged_model(preset, arch, tiny_base, tmp_path):
    base = tiny_base(arch)
    spec = load_spec(preset)
    ref = lora_for(spec, base, tmp_path / "adapter").merge_and_unload()
    clf = SpecClassifier(preset_on(preset, base, **{"adapter.path": tmp_path / "adapter",
                                                    "adapter.version": "v1", "quantization.mode": "none"}))
    texts = random_texts(40, seed=3)
    ours = clf.scores(texts)
    theirs = reference_seq_cls(ref, clf.tokenizer, texts)
    assert (ours - theirs).abs().max().item() <= TOL
    res = clf.classify(texts)
    assert res.probs.shape == (40, len(spec.labels)) and res.adapter_versions == ("v1",) * 40
    np.testing.assert_allclose(res.probs.sum(1), 1.0, atol=1e-5)
    assert clf.labels == spec.label_names


def test_minilm_default_preset_with_lora_matches_peft(tmp_path):
    """The offline default: the real MiniLM from PyPI (Bert) + a LoRA adapter on query/value."""
    from models.build import resolve_base

    spec = resolve_base(load_spec("minilm-lora-sst2"))
    ref = lora_for(spec, spec.base.id, tmp_path / "adapter").merge_and_unload()
    clf = SpecClassifier(spec.with_overrides(**{"adapter.path": tmp_path / "adapter", "device": "cpu"}))
    texts = random_texts(16, seed=4)
    assert (clf.scores(texts) - reference_seq_cls(ref, clf.tokenizer, texts)).abs().max().item() <= TOL


@pytest.fixture(scope="module")
def verbalizer_case(tiny_base, tmp_path_factory):
    """``verbalizer_case("s1")`` -> (spec, PEFT-merged reference, renderer, label token ids) on a
    tiny Llama whose label answers vary with the input; built once per preset."""
    cache = {}

    def make(preset):
        if preset not in cache:
            base = tiny_base("llama")
            spec = preset_on(preset, base, **{"generate.max_new_tokens": 3})
            tok = PreTrainedTokenizerFast.from_pretrained(base)
            renderer = PromptRenderer(spec, tok)
            label_ids = [ids[0] for ids in renderer.label_token_ids()]
            make_labels_answerable(base, [renderer.render(t) for t in random_texts(64, seed=11)], label_ids)
            adapter = tmp_path_factory.mktemp("adapter") / preset
            ref = lora_for(spec, base, adapter).merge_and_unload()
            cache[preset] = (spec.with_overrides(**{"adapter.path": adapter}), ref, renderer, label_ids)
        return cache[preset]

    return make


@pytest.mark.parametrize("preset", ["s1", "s3"])
def test_verbalizer_preset_matches_reference_and_greedy_generation(preset, verbalizer_case):
    spec, ref, renderer, label_ids = verbalizer_case(preset)
    clf = SpecClassifier(spec.with_overrides(**{"quantization.mode": "none"}))
    texts = random_texts(N_AGREE, seed=5)
    ours = clf.scores(texts)
    theirs = reference_verbalizer(ref, clf.tokenizer, renderer, texts[:40], label_ids)
    assert (ours[:40] - theirs).abs().max().item() <= TOL

    verbalized = ours.argmax(-1).tolist()
    generated = clf.generate_labels(texts)
    assert generated == verbalized
    assert len(set(verbalized)) >= 2, "the check is only meaningful if the label varies with the input"


def test_verbalizer_never_runs_the_full_lm_head(verbalizer_case):
    """Only k rows of lm_head are used, at the last position: the vocab-sized projection never runs."""
    spec, _, _, _ = verbalizer_case("s1")
    for prefix_cache in (True, False):
        clf = SpecClassifier(spec.with_overrides(**{"quantization.mode": "none",
                                                    "runtime.prefix_cache": prefix_cache}))
        calls = []
        clf.verbalizer.lm_head.register_forward_hook(lambda *a: calls.append(1))
        clf.classify(random_texts(20, seed=1))
        assert calls == []
    clf.generate_labels(random_texts(2, seed=1))
    assert calls, "the hook works: generation does run lm_head"


def test_long_messages_are_cut_inside_the_text(verbalizer_case):
    """The answer position must stay at the end of the prompt, whatever the message length."""
    spec, _, renderer, _ = verbalizer_case("s3")
    short = renderer.encode(["good"])[0]
    tail = short[-8:]  # the end of the template: '" <|end|> <|assistant|> Classifying ... as'
    long = renderer.encode(["good " * 500])[0]
    assert len(long) == spec.max_length and long[-8:] == tail and long[: 10] == short[:10]


def test_prefix_cache_gives_the_same_scores(verbalizer_case):
    spec, _, _, _ = verbalizer_case("s1")
    cached = SpecClassifier(spec.with_overrides(**{"quantization.mode": "none"}))
    plain = SpecClassifier(spec.with_overrides(**{"quantization.mode": "none", "runtime.prefix_cache": False}))
    assert cached.prefix is not None and cached.prefix.length >= 20 and plain.prefix is None
    texts = random_texts(64, seed=9)
    assert (cached.scores(texts) - plain.scores(texts)).abs().max().item() <= TOL


def test_generate_head_classifies_like_the_verbalizer(verbalizer_case):
    spec, _, _, _ = verbalizer_case("s3")
    verb = SpecClassifier(spec.with_overrides(**{"quantization.mode": "none"}))
    gen = SpecClassifier(spec.with_overrides(**{"quantization.mode": "none", "head": "causal_lm_generate"}))
    texts = random_texts(24, seed=6)
    assert gen.classify(texts).probs.argmax(1).tolist() == verb.classify(texts).probs.argmax(1).tolist()


def _nf4_reference(spec, base, adapter):
    """transformers' own bitsandbytes loading + peft, without any of models/."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    q = spec.quantization
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=q.double_quant,
                             bnb_4bit_compute_dtype=torch.bfloat16, llm_int8_skip_modules=["score", "lm_head"])
    kw = {"quantization_config": bnb, "device_map": {"": "cpu"}, "dtype": torch.bfloat16}
    torch.manual_seed(0)
    if spec.head == "sequence_classification":
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(spec.labels), **kw)
    else:
        model = AutoModelForCausalLM.from_pretrained(base, **kw)
    return PeftModel.from_pretrained(model, adapter).eval()


@pytest.mark.parametrize(("preset", "arch"), [("s1", "llama"), ("s2", "gemma2")])
def test_nf4_preset_runs_on_cpu_and_matches_plain_bnb_peft(preset, arch, tiny_base, tmp_path):
    base = tiny_base(arch)
    spec = load_spec(preset)
    assert spec.quantization.mode == "nf4"
    lora_for(spec, base, tmp_path / "adapter")
    q = SpecClassifier(preset_on(preset, base, **{"adapter.path": tmp_path / "adapter"}))
    linear = q.model.get_base_model().base_model.layers[0].self_attn.k_proj.base_layer
    assert type(linear).__name__ == "Linear4bit"
    texts = random_texts(24, seed=7)
    probs = q.classify(texts).probs
    assert np.isfinite(probs).all() and probs.shape == (24, len(spec.labels))
    ref = _nf4_reference(spec, base, tmp_path / "adapter")
    if spec.head == "sequence_classification":
        theirs = reference_seq_cls(ref, q.tokenizer, texts)
    else:
        label_ids = [ids[0] for ids in q.renderer.label_token_ids()]
        theirs = reference_verbalizer(ref, q.tokenizer, q.renderer, texts, label_ids)
    # bf16 compute: the tolerance is bf16's, not fp32's.
    assert (q.scores(texts) - theirs).abs().max().item() <= 0.05 * max(1.0, theirs.abs().max().item())


def test_sparta_preset_matches_peft_sparta_merge(tiny_base, tmp_path):
    base = tiny_base("gemma")
    spec = load_spec("s0")
    ref = save_sparta_adapter(base, tmp_path / "adapter", spec.adapter.sparta.sparsity, scale=0.5)
    clf = SpecClassifier(preset_on("s0", base, **{"adapter.path": tmp_path / "adapter",
                                                  "quantization.mode": "none"}))
    texts = random_texts(40, seed=8)
    assert (clf.scores(texts) - reference_seq_cls(ref, clf.tokenizer, texts)).abs().max().item() <= TOL
    # bf16, the preset's own setting, stays close.
    bf16 = SpecClassifier(preset_on("s0", base, **{"adapter.path": tmp_path / "adapter"}))
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    assert (bf16.scores(texts) - clf.scores(texts)).abs().max().item() < 0.1

"""SpaRTA adapters: peft-sparta's own loader and ours read the same files, and the quantized path."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification

from models.build import load_model
from models.classifier import SpecClassifier
from models.sparta import load_sparta
from tests.models.factories import preset_on, random_texts, reference_seq_cls, save_sparta_adapter


def test_peft_sparta_loader_reads_our_adapter(tiny_base, tmp_path):
    """peft-sparta 0.0.3's SpaRTAforSequenceClassification (bf16 only) loads what we save and
    classifies like our bf16 path."""
    from peft_sparta import SpaRTAforSequenceClassification

    base = tiny_base("gemma")
    save_sparta_adapter(base, tmp_path / "adapter", sparsity=0.99, scale=0.5)
    theirs = SpaRTAforSequenceClassification(str(tmp_path / "adapter"))
    ours = SpecClassifier(preset_on("s0", base, **{"adapter.path": tmp_path / "adapter"}))
    texts = random_texts(16, seed=2)
    t = theirs.classify(texts)
    o = torch.from_numpy(ours.classify(texts).probs)
    assert (t - o).abs().max().item() < 0.03  # two bf16 computations
    assert theirs.decide_class(texts) == [ours.labels[i] for i in o.argmax(1).tolist()]


def test_adapter_saved_by_peft_sparta_itself_loads(tiny_base, tmp_path):
    """``SpaRTA.save(merged=False)`` writes config.json + sparse_deltas.safetensors; with the head's
    initial weight stored as head_init.safetensors, our loader serves it exactly."""
    from peft_sparta import SpaRTA

    base = tiny_base("gemma")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
    head_init = model.score.weight.detach().clone()
    sparta = SpaRTA(model, sparsity=0.99)
    with torch.no_grad():
        for _, d in sparta.deltas.items():
            d.normal_(0, 0.3)
    out = tmp_path / "adapter"
    out.mkdir()
    sparta.save(str(out), merged=False)
    save_file({"head": head_init}, out / "head_init.safetensors")
    assert json.loads((out / "config.json").read_text())["sparta_pretrained_model"] == str(base)
    adapter = load_sparta(out)
    assert adapter.num_labels == 2 and "model.layers.0.self_attn.v_proj.weight" in adapter.nonzero
    sparta.eval()
    clf = SpecClassifier(preset_on("s0", base, **{"adapter.path": out, "quantization.mode": "none"}))
    texts = random_texts(16, seed=3)
    assert (clf.scores(texts) - reference_seq_cls(sparta.model, clf.tokenizer, texts)).abs().max().item() <= 1e-4


def test_sparta_on_nf4_base_keeps_the_adapter_effect(tiny_base, tmp_path):
    """On a 4-bit base the deltas go beside the quantized weights (sparse side path): the adapter's
    effect on the logits survives quantization (see benchmarks/sparta_quant.py for the numbers)."""
    base = tiny_base("gemma")
    save_sparta_adapter(base, tmp_path / "adapter", sparsity=0.99, scale=0.05)
    texts = random_texts(64, seed=4)
    common = {"quantization.mode": "nf4", "quantization.compute_dtype": "float32"}
    fp = SpecClassifier(preset_on("s0", base, **{"adapter.path": tmp_path / "adapter", "quantization.mode": "none"}))
    # The base alone, its head untrained: allowed here to measure the adapter's effect against it.
    fp_spec = preset_on("s0", base, **{"adapter.kind": "none", "adapter.path": None, "quantization.mode": "none"})
    fp_plain = SpecClassifier(fp_spec, load_model(fp_spec, allow_random_head=True))
    q = SpecClassifier(preset_on("s0", base, **{"adapter.path": tmp_path / "adapter", **common}))
    q_spec = preset_on("s0", base, **{"adapter.kind": "none", "adapter.path": None, **common})
    q_plain = SpecClassifier(q_spec, load_model(q_spec, allow_random_head=True))
    layer = q.model.model.layers[0].self_attn.v_proj
    assert type(layer).__name__ == "Linear4bit" and hasattr(layer, "sparta_delta")
    effect_fp = fp.scores(texts) - fp_plain.scores(texts)
    effect_q = q.scores(texts) - q_plain.scores(texts)
    assert effect_fp.abs().mean() > 0.05, "the adapter must change the logits for this to mean anything"
    # The sparse side path is exact in float32, so the effect matches up to 4-bit activations drift.
    assert (effect_q - effect_fp).abs().mean() < 0.1 * effect_fp.abs().mean()

    merged_q = SpecClassifier(preset_on("s0", base, **{"adapter.path": tmp_path / "adapter", **common,
                                                       "adapter.sparta_on_quantized": "merge_then_quantize"}))
    layer = merged_q.model.model.layers[0].self_attn.v_proj
    assert type(layer).__name__ == "Linear4bit" and not hasattr(layer, "sparta_delta")
    effect_mq = merged_q.scores(texts) - q_plain.scores(texts)
    assert (effect_mq - effect_fp).abs().mean() < 0.1 * effect_fp.abs().mean()

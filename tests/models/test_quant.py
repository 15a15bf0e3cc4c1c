"""bitsandbytes modes on CPU: the right layer types, and outputs near the full-precision model."""

from __future__ import annotations

import pytest
import torch

from models.classifier import SpecClassifier
from models.quant import bnb_config, load_kwargs
from models.spec import QuantizationSpec
from tests.models.factories import random_texts, save_lora, seq_spec


def test_bnb_config_per_mode():
    assert bnb_config(QuantizationSpec(mode="none")) is None and bnb_config(QuantizationSpec(mode="bf16")) is None
    nf4 = bnb_config(QuantizationSpec(mode="nf4", double_quant=True, compute_dtype="bfloat16"))
    assert nf4.load_in_4bit and nf4.bnb_4bit_quant_type == "nf4" and nf4.bnb_4bit_use_double_quant
    assert nf4.bnb_4bit_compute_dtype == torch.bfloat16 and "score" in nf4.llm_int8_skip_modules
    assert bnb_config(QuantizationSpec(mode="fp4")).bnb_4bit_quant_type == "fp4"
    assert bnb_config(QuantizationSpec(mode="int8")).load_in_8bit


@pytest.mark.parametrize(("mode", "layer"), [("fp4", "Linear4bit"), ("int8", "Linear8bitLt")])
def test_quantized_modes_run_on_cpu(mode, layer, tiny_base, tmp_path):
    base = tiny_base("llama")
    save_lora(base, tmp_path / "a", head="sequence_classification", labels=("negative", "positive"),
              target_modules=["q_proj", "v_proj"], r=4, alpha=8, dropout=0.0)
    full = SpecClassifier(seq_spec(base, kind="lora", path=tmp_path / "a"))
    q = SpecClassifier(seq_spec(base, kind="lora", path=tmp_path / "a").with_overrides(
        **{"quantization.mode": mode, "quantization.compute_dtype": "float32"}))
    proj = q.model.get_base_model().model.layers[0].self_attn.k_proj
    assert type(proj).__name__ == layer
    assert type(q.model.get_base_model().score.modules_to_save["default"]).__name__ == "Linear"
    texts = random_texts(16, seed=2)
    ref = full.scores(texts)
    # Relative error of the logits: small but not zero (the weights really are quantized).
    rel = ((q.scores(texts) - ref).abs().max() / ref.abs().max()).item()
    assert 0 < rel < 0.2


@pytest.mark.parametrize(("native", "asked", "used"), [
    (False, "bfloat16", torch.float32),  # emulated bf16: float32 is many times faster
    (True, "bfloat16", torch.bfloat16),
    (False, "float16", torch.float16),  # only bf16 falls back: another dtype was chosen on purpose
])
def test_4bit_compute_dtype_follows_the_hardware(monkeypatch, native, asked, used):
    # Which bf16 the CPU running the test has is not the test's to choose: the detection is replaced.
    monkeypatch.setattr("models.runtime.native_bf16", lambda device: native)
    kw = load_kwargs(QuantizationSpec(mode="nf4", double_quant=True, compute_dtype=asked), torch.device("cpu"))
    assert kw["quantization_config"].bnb_4bit_compute_dtype == used and kw["dtype"] == used
    assert load_kwargs(QuantizationSpec(mode="bf16"), torch.device("cpu"))["dtype"] == torch.bfloat16

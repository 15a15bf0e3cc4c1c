"""Optional torch.compile, and sub-batch inputs built in a background thread while the current
forward pass runs: both must give the same scores as the in-line path. bf16 autocast (model.precision)
stays close to fp32."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import structlog
import torch

from models.batching import CPU_TOKEN_BUDGET, plan_batches
from models.classifier import SpecClassifier
from models.errors import SpecError
from models.loading import load_classifier, spec_from_settings
from models.runtime import Prefetcher, compile_forward
from models.spec import load_spec
from schemas.errors import ConfigError
from schemas.settings import ModelSettings, load_settings
from tests.models.factories import TOL, lora_for, preset_on, random_texts

WAIT_S = 30  # only bounds a hang; no assertion depends on timing


def test_prefetcher_builds_the_next_item_while_the_caller_works():
    started = {i: threading.Event() for i in range(4)}
    threads = set()

    def build(i: int) -> int:
        threads.add(threading.current_thread().name)
        started[i].set()
        return i * 10

    got = []
    for value in Prefetcher().map(build, range(4)):
        i = value // 10
        if i < 3:
            # fn(i + 1) runs before the caller is done with item i.
            assert started[i + 1].wait(WAIT_S)
        got.append(value)
    assert got == [0, 10, 20, 30]
    assert threads and all(name.startswith("sentistream-prefetch") for name in threads)


def test_prefetcher_waits_for_the_background_item_when_the_caller_stops_early():
    running, release, finished = threading.Event(), threading.Event(), threading.Event()

    def build(i: int) -> int:
        if i == 1:
            running.set()
            release.wait(WAIT_S)
            finished.set()
        return i

    items = Prefetcher().map(build, range(3))
    assert next(items) == 0
    assert running.wait(WAIT_S)
    threading.Timer(0.2, release.set).start()
    items.close()  # as when the caller's forward pass raises: returns only once build(1) is done
    assert finished.is_set()


def _sub_batches(clf: SpecClassifier, texts: list[str]) -> int:
    return len(plan_batches([len(x) for x in clf.renderer.encode(texts)], clf.token_budget,
                            clf.spec.runtime.pad_to_multiple_of))


@pytest.mark.parametrize(("preset", "arch", "prefix_cache"), [
    ("s4", "gpt2", False),     # sequence classification, LoRA
    ("s1", "llama", True),     # verbalizer through the KV prefix cache
    ("s1", "llama", False),    # verbalizer, whole prompts
])
def test_overlapped_sub_batches_equal_sequential(preset, arch, prefix_cache, tiny_base, tmp_path):
    base = tiny_base(arch)
    lora_for(load_spec(preset), base, tmp_path / "adapter")
    spec = preset_on(preset, base, **{"adapter.path": tmp_path / "adapter", "quantization.mode": "none",
                                      "runtime.token_budget": 96, "runtime.prefix_cache": prefix_cache})
    texts = random_texts(60, seed=21)
    overlapped = SpecClassifier(spec.with_overrides(**{"runtime.overlap_host_work": True}))
    sequential = SpecClassifier(spec)
    assert overlapped.prefetcher is not None and sequential.prefetcher is None
    assert (overlapped.prefix is not None) == prefix_cache
    assert _sub_batches(overlapped, texts) >= 4
    a, b = overlapped.classify(texts).probs, sequential.classify(texts).probs
    assert np.abs(a - b).max() <= 1e-6
    assert np.allclose(a.sum(1), 1, atol=1e-5)


def test_settings_model_overlapped_equals_sequential(tiny_bert_dir):
    texts = random_texts(50, seed=22)
    # fp32 (not the default auto): the comparison is of the two input pipelines, not of precisions.
    common = {"path": tiny_bert_dir, "device": "cpu", "token_budget": 64, "precision": "fp32"}
    overlapped = load_classifier(ModelSettings(**common, overlap_host_work=True))
    sequential = load_classifier(ModelSettings(**common))
    assert overlapped.prefetcher is not None and sequential.prefetcher is None
    lengths = [len(x) for x in overlapped.renderer.encode(texts)]
    assert len(plan_batches(lengths, 64)) >= 4
    assert np.abs(overlapped.classify(texts).probs - sequential.classify(texts).probs).max() <= 1e-6


def test_bf16_autocast_stays_close_to_fp32(tiny_bert_dir):
    texts = random_texts(60, seed=23)
    spec = spec_from_settings(ModelSettings(path=tiny_bert_dir, device="cpu", precision="fp32"))
    # runtime.autocast bf16 (not auto): the bf16 path runs whatever this machine's CPU has.
    autocast = SpecClassifier(spec.with_overrides(**{"runtime.autocast": "bf16"}))
    assert autocast.bf16
    bf16, fp32 = autocast.classify(texts).probs, SpecClassifier(spec).classify(texts).probs
    diff = np.abs(bf16 - fp32).max()
    assert 0 < diff <= 0.02  # above 0: the bf16 path really ran
    assert np.allclose(bf16.sum(1), 1, atol=1e-5)


def test_precision_auto_uses_bf16_only_where_the_hardware_has_it(tiny_bert_dir):
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert load_classifier(ModelSettings(path=tiny_bert_dir, device="cpu")).bf16 == native
    bf16 = load_classifier(ModelSettings(path=tiny_bert_dir, device="cpu", precision="bf16"))
    assert bf16.spec.quantization.mode == "bf16" and next(bf16.model.parameters()).dtype == torch.bfloat16
    fp32 = load_classifier(ModelSettings(path=tiny_bert_dir, device="cpu", precision="fp32"))
    assert not fp32.bf16 and next(fp32.model.parameters()).dtype == torch.float32


def test_precision_auto_means_autocast_except_for_quantized_specs_and_sparta(tmp_path):
    assert spec_from_settings(ModelSettings()).runtime.autocast == "auto"
    assert spec_from_settings(ModelSettings(precision="fp32")).runtime.autocast == "none"
    assert spec_from_settings(ModelSettings(preset="s1")).runtime.autocast == "none"  # nf4 weights
    sparta = tmp_path / "sparta"
    sparta.mkdir()
    (sparta / "config.json").write_text("{}")
    (sparta / "sparse_deltas.safetensors").write_bytes(b"")
    spec = spec_from_settings(ModelSettings(adapter_path=sparta))
    assert (spec.adapter.kind, spec.runtime.autocast) == ("sparta", "none")


def test_explicit_precision_overrides_the_specs_quantization():
    assert spec_from_settings(ModelSettings(preset="minilm-lora-sst2")).quantization.mode == "none"
    assert spec_from_settings(ModelSettings(preset="minilm-lora-sst2", precision="bf16")).quantization.mode == "bf16"
    assert spec_from_settings(ModelSettings(preset="s1", precision="fp32")).quantization.mode == "none"
    assert spec_from_settings(ModelSettings(preset="s1")).quantization.mode == "nf4"
    with pytest.raises(ConfigError, match=r"model\.precision"):
        load_settings(model={"precision": "fp16"})


def test_compile_none_is_the_module_itself():
    module = torch.nn.Linear(4, 2)
    assert compile_forward(module, "none", torch.device("cpu")) is module


def test_bad_compile_value_fails_naming_the_setting(tiny_base):
    with pytest.raises(SpecError, match="runtime.compile"):
        preset_on("s4", tiny_base("gpt2"), **{"runtime.compile": "fastest"})
    with pytest.raises(ConfigError, match=r"model\.compile \(SENTISTREAM_MODEL__COMPILE\)"):
        load_settings(model={"compile": "fastest"})


def test_runtime_settings_override_the_spec_and_old_compile_switch_values_still_parse(tiny_base):
    base = tiny_base("gpt2")
    assert spec_from_settings(ModelSettings(preset="s4", path=base)).runtime.compile == "none"
    spec = spec_from_settings(ModelSettings(preset="s4", path=base, compile="reduce-overhead"))
    assert spec.runtime.compile == "reduce-overhead"
    assert not spec.runtime.overlap_host_work
    assert spec_from_settings(ModelSettings(preset="s4", path=base, overlap_host_work=True)).runtime.overlap_host_work
    assert preset_on("s4", base, **{"runtime.compile": True}).runtime.compile == "default"
    assert preset_on("s4", base, **{"runtime.compile": False}).runtime.compile == "none"


def test_token_budget_setting_reaches_both_set_ups(tiny_base, tiny_bert_dir):
    base = tiny_base("gpt2")
    preset_budget = spec_from_settings(ModelSettings(preset="s4", path=base)).runtime.token_budget
    assert spec_from_settings(ModelSettings(preset="s4", path=base, token_budget=512)).runtime.token_budget == 512
    assert preset_budget != 512
    plain = load_classifier(ModelSettings(path=tiny_bert_dir, device="cpu"))
    assert plain.spec.runtime.token_budget is None and plain.token_budget == CPU_TOKEN_BUDGET
    assert load_classifier(ModelSettings(path=tiny_bert_dir, device="cpu", token_budget=64)).token_budget == 64
    with pytest.raises(ConfigError, match=r"model\.token_budget"):
        load_settings(model={"token_budget": 0})

def test_cuda_graph_mode_falls_back_off_cuda():
    module = torch.nn.Linear(4, 2)
    x = torch.randn(3, 4)
    with structlog.testing.capture_logs() as logs:
        # The eager backend checks the wrapping without inductor's C++ build (the test below has it).
        compiled = compile_forward(module, "reduce-overhead", torch.device("cpu"), backend="eager")
    assert [e["mode"] for e in logs if e["event"] == "compile_mode_fallback"] == ["reduce-overhead"]
    assert isinstance(compiled, torch._dynamo.eval_frame.OptimizedModule)
    with torch.inference_mode():
        assert torch.equal(compiled(x), module(x))


@pytest.mark.parametrize(("preset", "arch"), [("s4", "gpt2"), ("s1", "llama")])
def test_compile_setting_wraps_the_forward(preset, arch, tiny_base, tmp_path):
    base = tiny_base(arch)
    lora_for(load_spec(preset), base, tmp_path / "adapter")
    spec = preset_on(preset, base, **{"adapter.path": tmp_path / "adapter", "quantization.mode": "none",
                                      "runtime.compile": "default"})
    clf = SpecClassifier(spec)
    wrapped = clf.model if spec.head == "sequence_classification" else clf.verbalizer.backbone
    assert isinstance(wrapped, torch._dynamo.eval_frame.OptimizedModule)


# Backend aot_eager: dynamo's graph capture and AOTAutograd's decompositions, without inductor's
# C++ code generation, which took 155 s for the s4 case on the shared 2-core machine.
@pytest.mark.parametrize(("preset", "arch"), [("s4", "gpt2"), ("s1", "llama")])
def test_compiled_forward_gives_the_same_scores(preset, arch, tiny_base, tmp_path):
    base = tiny_base(arch)
    lora_for(load_spec(preset), base, tmp_path / "adapter")
    spec = preset_on(preset, base, **{"adapter.path": tmp_path / "adapter", "quantization.mode": "none",
                                      "runtime.token_budget": 96, "runtime.prefix_cache": False})
    texts = random_texts(24, seed=12)
    clf = SpecClassifier(spec)
    eager = clf.scores(texts)
    if spec.head == "sequence_classification":
        clf.model = compile_forward(clf.model, "default", clf.device, backend="aot_eager")
    else:
        clf.verbalizer.backbone = compile_forward(clf.verbalizer.backbone, "default", clf.device,
                                                  backend="aot_eager")
    assert (clf.scores(texts) - eager).abs().max().item() <= TOL


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_give_the_same_scores(tiny_base, tmp_path):
    base = tiny_base("gpt2")
    lora_for(load_spec("s4"), base, tmp_path / "adapter")
    spec = preset_on("s4", base, **{"adapter.path": tmp_path / "adapter", "device": "cuda"})
    texts = random_texts(24, seed=13)
    eager = SpecClassifier(spec).scores(texts)
    graphs = SpecClassifier(spec.with_overrides(**{"runtime.compile": "reduce-overhead"}))
    for _ in range(3):  # recording, then replays
        assert (graphs.scores(texts) - eager).abs().max().item() <= TOL

"""One resident base serving several LoRA (or SpaRTA) adapters; routes pick one per message; batches mix them."""

from __future__ import annotations

import pytest
import torch

from models.classifier import SpecClassifier
from models.errors import SpecError
from models.spec import ModelSpec, load_spec, parse_spec
from tests.models.factories import random_texts, save_lora

ATTRS = [{"source": "twitter", "lang": "en", "topic": "t1"}, {"source": "shop", "lang": "ko", "topic": "t1"},
         {"source": "shop", "lang": "en", "topic": "reviews"}, {"source": "blog", "lang": "en", "topic": "t9"}]


def spec_for(base, head, adapters, routes=(), **extra) -> ModelSpec:
    labels = ("negative", "neutral", "positive")
    default, *more = adapters
    return ModelSpec.model_validate({
        "name": "multi", "base": {"id": str(base)}, "head": head, "device": "cpu",
        "labels": [{"id": i, "name": n} for i, n in enumerate(labels)],
        "adapter": {"kind": "lora", "path": str(default[1]), "version": default[0]},
        "adapters": [{"name": n, "path": str(p), "version": f"{n}-v1"} for n, p in more],
        "routes": list(routes), **extra,
    })


ROUTES = [{"adapter": "tweets", "source": "twitter"}, {"adapter": "korean", "lang": "ko"},
          {"adapter": "tweets", "topic": "reviews", "source": "shop"}]


@pytest.mark.parametrize(("arch", "head", "targets"), [
    ("gpt2", "sequence_classification", ["c_attn"]),
    ("llama", "causal_lm_verbalizer", ["k_proj", "v_proj"]),
])
def test_mixed_adapter_batch_equals_per_adapter_batches(arch, head, targets, tiny_base, tmp_path):
    base = tiny_base(arch)
    adapters = []
    for seed, name in enumerate(("default", "tweets", "korean")):
        save_lora(base, tmp_path / name, head=head, labels=("negative", "neutral", "positive"),
                  target_modules=targets, r=4, alpha=8, dropout=0.0, seed=10 + seed)
        adapters.append((name, tmp_path / name))
    multi = SpecClassifier(spec_for(base, head, adapters, ROUTES))
    texts = random_texts(40, seed=1)
    attrs = [ATTRS[i % len(ATTRS)] for i in range(len(texts))]
    mixed = multi.classify(texts, attrs)
    expected_route = {0: "tweets", 1: "korean", 2: "tweets", 3: "default"}
    for name, path in adapters:
        single = SpecClassifier(spec_for(base, head, [(name, path)]))
        rows = [i for i in range(len(texts)) if expected_route[i % 4] == name]
        alone = single.classify([texts[i] for i in rows]).probs
        assert abs(mixed.probs[rows] - alone).max() <= 1e-4
        want = "default" if name == "default" else f"{name}-v1"
        assert {mixed.adapter_versions[i] for i in rows} == {want}
    # The adapters really differ, so routing matters.
    assert abs(multi.classify(texts[:8], [ATTRS[0]] * 8).probs - multi.classify(texts[:8]).probs).max() > 1e-3


def test_routes_must_name_known_adapters(tmp_path):
    with pytest.raises(Exception, match="not in adapters"):
        spec_for(tmp_path, "sequence_classification", [("default", tmp_path), ("a", tmp_path)],
                 [{"adapter": "b", "lang": "ko"}])


def test_multi_adapter_needs_lora_default():
    with pytest.raises(SpecError, match="adapters .*needs adapter.kind 'lora'"):
        parse_spec({"name": "x", "base": {"id": "x"}, "head": "sequence_classification",
                    "labels": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}],
                    "adapters": [{"name": "a", "path": "/x"}]})


def test_routes_and_adapters_from_settings(tiny_base, tmp_path):
    from models.loading import spec_from_settings
    from schemas.settings import ModelSettings

    base = tiny_base("gpt2")
    settings = ModelSettings(preset="s4", path=base, adapter_path=tmp_path,
                             adapters=({"name": "tweets", "path": str(tmp_path), "version": "t1"},),
                             routes=({"adapter": "tweets", "source": "twitter"},))
    spec = spec_from_settings(settings)
    assert spec.route({"source": "twitter"}) == "tweets" and spec.route({"source": "shop"}) == "default"
    with pytest.raises(SpecError, match="routes name adapters \\['nope'\\]"):
        spec_from_settings(settings.model_copy(update={"routes": ({"adapter": "nope"},)}))


def _random_sparta(base, out, seed: int, fraction: float = 0.05, scale: float = 0.5) -> None:
    """A SpaRTA adapter on S0's targets (Wv, Wo) + head with its own random index set."""
    from transformers import AutoModelForSequenceClassification

    from models.sparta import save_sparta

    torch.manual_seed(0)  # the head initialisation every load of this base gets
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
    g = torch.Generator().manual_seed(seed)
    indices, deltas = {}, {}
    for name, p in model.named_parameters():
        if name.endswith(("v_proj.weight", "o_proj.weight", "score.weight")):
            n = max(1, int(p.numel() * fraction))
            flat = torch.randperm(p.numel(), generator=g)[:n]
            indices[name] = torch.stack(torch.unravel_index(flat, p.shape), dim=1)
            deltas[name] = torch.randn(n, generator=g) * scale
    save_sparta(out, model_config=model.config, base_model=str(base), indices=indices, deltas=deltas,
                head_init=model.score.weight.detach().clone())


@pytest.mark.parametrize("mode", ["none", "bf16"])
def test_mixed_sparta_batch_equals_per_adapter_batches(mode, tiny_base, tmp_path):
    base = tiny_base("gemma")
    names = ("default", "tweets", "korean")
    for seed, name in enumerate(names):
        _random_sparta(base, tmp_path / name, seed=30 + seed)
    s0 = load_spec("s0").with_overrides(**{"base.id": str(base), "device": "cpu", "quantization.mode": mode,
                                           "runtime.token_budget": 128})

    def spec(adapters, routes=()):
        (first, *more) = adapters
        return s0.with_overrides(**{"adapter.path": tmp_path / first, "adapter.version": first,
                                    "adapters": [{"name": n, "path": tmp_path / n, "version": f"{n}-v1"} for n in more],
                                    "routes": list(routes)})

    multi = SpecClassifier(spec(names, ROUTES))
    assert multi.sparta_set is not None
    texts = random_texts(40, seed=4)
    attrs = [ATTRS[i % len(ATTRS)] for i in range(len(texts))]
    mixed = multi.classify(texts, attrs)
    expected_route = {0: "tweets", 1: "korean", 2: "tweets", 3: "default"}
    for name in names:
        # Each adapter alone, merged into the weights the single-adapter way.
        single = SpecClassifier(spec([name]))
        assert single.sparta_set is None
        rows = [i for i in range(len(texts)) if expected_route[i % 4] == name]
        alone = single.classify([texts[i] for i in rows]).probs
        assert abs(mixed.probs[rows] - alone).max() <= 1e-6
        assert {mixed.adapter_versions[i] for i in rows} == {name if name == "default" else f"{name}-v1"}
    # The adapters differ, and after a mixed call the default adapter is back in the weights.
    assert abs(multi.classify(texts[:8], [ATTRS[0]] * 8).probs - multi.classify(texts[:8]).probs).max() > 1e-3
    default_alone = SpecClassifier(spec(["default"])).classify(texts).probs
    assert abs(multi.classify(texts).probs - default_alone).max() <= 1e-6


def test_multi_sparta_refuses_a_4bit_base():
    with pytest.raises(SpecError, match="adapters with adapter.kind 'sparta' need quantization.mode"):
        parse_spec({"name": "x", "base": {"id": "x"}, "head": "sequence_classification",
                    "labels": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}],
                    "quantization": {"mode": "nf4"}, "adapter": {"kind": "sparta", "path": "/x"},
                    "adapters": [{"name": "a", "path": "/y"}]})

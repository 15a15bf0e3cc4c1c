"""KV prefix cache vs none for the verbalizer head on CPU (S1's chat prompt and system prompt).

    .venv/bin/python -m benchmarks.prefix_cache [--n 512] [--repeats 3] [--threads 2]

A Llama-shaped random model (hidden 256, 4 layers) with a tokenizer trained locally; the same
texts are scored with and without the cache, and the scores are checked to agree (<= 1e-4).
Prints msgs/s (median of the repeats) and the speed-up ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from models.classifier import SpecClassifier
from models.spec import load_spec
from tests.models.factories import build_causal_base, random_texts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        base = build_causal_base(Path(tmp) / "llama", "llama", hidden_size=256, intermediate_size=688,
                                 num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, head_dim=64)
        spec = load_spec("s1").with_overrides(**{
            "base.id": str(base), "device": "cpu", "quantization.mode": "none",
            "adapter.kind": "none", "adapter.path": None, "runtime.token_budget": 4096,
        })
        cached = SpecClassifier(spec)
        plain = SpecClassifier(spec.with_overrides(**{"runtime.prefix_cache": False}))
        texts = random_texts(args.n, seed=0)
        diff = (cached.scores(texts[:64]) - plain.scores(texts[:64])).abs().max().item()
        prompt_len = sum(len(x) for x in cached.renderer.encode(texts)) / len(texts)
        rates = {}
        for name, clf in (("no cache", plain), ("prefix cache", cached)):
            runs = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                clf.scores(texts)
                runs.append(args.n / (time.perf_counter() - t0))
            rates[name] = statistics.median(runs)
    print(f"prefix {cached.prefix.length} tokens of {prompt_len:.1f} per prompt on average; "
          f"max |score diff| {diff:.2e}; torch threads {args.threads}")
    print("| mode | msgs/s (median of %d) |" % args.repeats)
    print("|---|---|")
    for name, r in rates.items():
        print(f"| {name} | {r:.1f} |")
    print(f"speed-up: {rates['prefix cache'] / rates['no cache']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How much of a SpaRTA adapter's effect survives a 4-bit base, per way of applying it.

    .venv/bin/python -m benchmarks.sparta_quant [--n 500]

Tiny random Gemma (S0's architecture; hidden 64, 2 layers) + a SpaRTA adapter on Wv / Wo and the
head (peft-sparta's own sampler, random deltas of two sizes). Reference: deltas merged into fp32
weights. For each nf4 variant: max / mean |logit - reference|, label agreement with the
reference, and how well the adapter's effect (logits with adapter minus logits without, on the
same base precision) is kept: 1 - mean|effect_q - effect_fp32| / mean|effect_fp32|.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from models.build import load_model
from models.classifier import SpecClassifier
from models.spec import load_spec
from tests.models.factories import build_causal_base, random_texts, save_sparta_adapter


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--sparsity", type=float, default=0.99)
    args = ap.parse_args()
    texts = random_texts(args.n, seed=0)
    print("| delta std | base | SpaRTA applied | max abs diff | mean abs diff | label agreement | effect kept |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        base = build_causal_base(Path(tmp) / "gemma", "gemma")
        s0 = load_spec("s0")

        def scores(adapter: Path | None, **q) -> torch.Tensor:
            changes = {"base.id": str(base), "device": "cpu", "quantization.mode": "none", **q}
            if adapter is None:
                changes |= {"adapter.kind": "none", "adapter.path": None}
            else:
                changes["adapter.path"] = adapter
            spec = s0.with_overrides(**changes)
            # Without the adapter the head is untrained: allowed, to measure the adapter's effect.
            return SpecClassifier(spec, load_model(spec, allow_random_head=adapter is None)).scores(texts)

        nf4 = {"quantization.mode": "nf4", "quantization.compute_dtype": "float32"}
        plain_fp, plain_q = scores(None), scores(None, **nf4)
        for scale in (0.005, 0.05):
            adapter = Path(tmp) / f"sparta-{scale}"
            save_sparta_adapter(base, adapter, args.sparsity, scale=scale)
            ref = scores(adapter)
            effect_fp = ref - plain_fp
            rows = [("fp32", "merged (reference)", ref, plain_fp),
                    ("bf16", "merged", scores(adapter, **{"quantization.mode": "bf16"}), None),
                    ("nf4", "none (base only)", plain_q, None),
                    ("nf4", "sparse side path", scores(adapter, **nf4), plain_q),
                    ("nf4", "merged, then quantized",
                     scores(adapter, **nf4, **{"adapter.sparta_on_quantized": "merge_then_quantize"}), plain_q)]
            for precision, how, s, plain in rows:
                d = (s - ref).abs()
                agree = (s.argmax(-1) == ref.argmax(-1)).float().mean().item()
                kept = "" if plain is None else \
                    f"{1 - ((s - plain) - effect_fp).abs().mean().item() / effect_fp.abs().mean().item():.3f}"
                print(f"| {scale} | {precision} | {how} | {d.max().item():.4f} | {d.mean().item():.4f} | "
                      f"{agree:.3f} | {kept} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Throughput and MFU of the serving path on a gemma-2b-shaped model (random weights, real dims).

    .venv/bin/python -m benchmarks.gpu_models [--messages 4096] [--repeats 3] [--token-budget 65536]
        [--precisions bf16,nf4,int8] [--compile none|default|reduce-overhead] [--profile]

Needs CUDA (and bitsandbytes for nf4 / int8); without a GPU it says so and exits with status 2.
``--smoke`` runs the same code on a tiny model on whatever device there is, to check the script
itself; its numbers mean nothing.
For each precision (bf16, nf4, int8), head (sequence_classification, causal_lm_verbalizer) and
message length (32, 128 tokens) it loads the model through a ModelSpec and the same
SpecClassifier the daemon uses, classifies the messages (tokenization included) and prints
msgs/s and MFU against a bf16 matmul ceiling measured in the same run, and the peak GPU memory
allocated while serving. ``--profile`` then prints, for each precision's sequence-classification
model at 128 tokens, the CUDA kernels that took the most time in one forward batch.

FLOPs per message of T tokens: 2 * (linear-layer parameters) * T for the projections plus
4 * layers * T^2 * (heads * head_dim) for attention scores and values (the full square, as is
usual for MFU, though the causal half would do); the verbalizer's k label rows are negligible.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

GEMMA_2B = dict(  # google/gemma-2b config.json
    vocab_size=256000, hidden_size=2048, intermediate_size=16384, num_hidden_layers=18,
    num_attention_heads=8, num_key_value_heads=1, head_dim=256, max_position_embeddings=8192,
)


def matmul_ceiling_tflops(n: int = 8192, iters: int = 50) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * iters / (time.perf_counter() - t0) / 1e12


def flops_per_message(cfg: dict, tokens: int) -> float:
    h, inter, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    d_q = cfg["num_attention_heads"] * cfg["head_dim"]
    d_kv = cfg["num_key_value_heads"] * cfg["head_dim"]
    linear = L * (h * d_q + 2 * h * d_kv + d_q * h + 3 * h * inter)
    return 2 * linear * tokens + 4 * L * tokens**2 * d_q


TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, head_dim=64, max_position_embeddings=512)


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build_base(out: Path, dims: dict, with_head: bool = False) -> Path:
    """Random weights of ``dims``; ``with_head``: a sequence-classification checkpoint (2 labels) whose
    head is saved too, which the daemon's loader serves as it would a trained one."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, GemmaConfig

    from tests.models.factories import train_tokenizer

    tok = train_tokenizer(out)
    cfg = GemmaConfig(**dims, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, num_labels=2)
    auto = AutoModelForSequenceClassification if with_head else AutoModelForCausalLM
    with torch.device(device()):
        model = auto.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    del model
    return out


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def profile(clf, texts: list[str], label: str) -> None:
    """Top kernels by device time over one call: where a missed MFU target loses its time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with torch_profile(activities=activities) as prof:
        clf.scores(texts)
        sync()
    key = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    print(f"\nprofile: {label}, {len(texts)} messages in one call")
    print(prof.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=60), flush=True)


def texts_of(tokens: int, n: int) -> list[str]:
    from tests.models.factories import WORDS

    # Word-level tokenizer: one token per word, plus BOS.
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(tokens - 1)) for i in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--token-budget", type=int, default=65536)
    ap.add_argument("--precisions", default="bf16,nf4,int8")
    ap.add_argument("--compile", default="none", choices=("none", "default", "reduce-overhead"))
    ap.add_argument("--profile", action="store_true", help="print the top kernels of one seq-cls call per precision")
    ap.add_argument("--smoke", action="store_true", help="tiny model, any device: checks the script only")
    args = ap.parse_args()
    dims = TINY if args.smoke else GEMMA_2B
    if not torch.cuda.is_available() and not args.smoke:
        print("benchmarks.gpu_models needs a CUDA GPU (none is visible here); nothing was measured.",
              file=sys.stderr)
        return 2

    from models.build import load_model
    from models.classifier import SpecClassifier
    from models.spec import ModelSpec

    if torch.cuda.is_available():
        ceiling = matmul_ceiling_tflops()
        name = torch.cuda.get_device_name()
    else:
        ceiling, name = float("nan"), "cpu (smoke run: no ceiling, numbers mean nothing)"
    print(f"device: {name}; bf16 matmul ceiling {ceiling:.0f} TFLOP/s (8192^3, measured)")
    print(f"compile: {args.compile}; token budget {args.token_budget}; {args.messages} messages x {args.repeats} runs")
    print("| precision | head | tokens | msgs/s (median) | TFLOP/s | MFU | peak GPU GiB |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        base = build_base(Path(tmp) / "gemma-2b-random", dims)
        for precision in args.precisions.split(","):
            for head in ("sequence_classification", "causal_lm_verbalizer"):
                spec = ModelSpec.model_validate({
                    "name": f"bench-{precision}-{head}", "base": {"id": str(base)}, "head": head,
                    "device": device(), "max_length": 256,
                    "labels": [{"id": 0, "name": "negative"}, {"id": 1, "name": "positive"}],
                    "quantization": {"mode": precision, "compute_dtype": "bfloat16"},
                    "runtime": {"token_budget": args.token_budget, "prefix_cache": False,
                                "compile": args.compile},
                })
                # Random weights are the point here: a random sequence-classification head is allowed.
                clf = SpecClassifier(spec, load_model(spec, allow_random_head=True))
                for tokens in (32, 128):
                    texts = texts_of(tokens, args.messages)
                    clf.scores(texts[: min(512, len(texts))])  # warm-up: kernels, allocator
                    reset_peak()
                    runs = []
                    for _ in range(args.repeats):
                        sync()
                        t0 = time.perf_counter()
                        clf.scores(texts)
                        sync()
                        runs.append(len(texts) / (time.perf_counter() - t0))
                    rate = statistics.median(runs)
                    tflops = rate * flops_per_message(dims, tokens) / 1e12
                    print(f"| {precision} | {head} | {tokens} | {rate:,.0f} | {tflops:.0f} | {tflops / ceiling:.1%} "
                          f"| {peak_gib():.1f} |", flush=True)
                if args.profile and head == "sequence_classification":
                    profile(clf, texts_of(128, min(512, args.messages)), f"{precision} {head} 128 tokens")
                del clf
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

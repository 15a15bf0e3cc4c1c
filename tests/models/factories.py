"""Tiny real models of each preset's architecture, built from a config, with a tokenizer trained
here, and real adapters (peft LoRA, peft-sparta SpaRTA) saved in their on-disk formats."""

from __future__ import annotations

import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    Gemma2Config,
    GemmaConfig,
    GPT2Config,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

from models.spec import ModelSpec, load_spec
from tests.factories import CORPUS

TOL = 1e-4  # fp32 scores against a reference computation

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
PROMPT_WORDS = (
    "You are a sentiment classifier . Read the tweet and answer with exactly one word : negative , neutral or "
    "positive . helpful assistant that classifies message as Message : \" Classifying the sentiment of the "
    "무감정 슬픔 기쁨 분노 오늘 정말 좋아 너무 슬프다 화가 난다 그냥 그래"
)
WORDS = sorted({w for line in CORPUS for w in line.replace(",", " ").replace("!", " ").split()})


def preset_on(name: str, base, **changes) -> ModelSpec:
    """The preset ``name`` on a local base, on CPU, with ``changes`` (dotted keys) applied."""
    spec = load_spec(name)
    return spec.with_overrides(**{"base.id": str(base), "device": "cpu", **changes})


def seq_spec(base, labels=("negative", "positive"), **adapter) -> ModelSpec:
    return ModelSpec.model_validate({
        "name": "t", "base": {"id": str(base)}, "head": "sequence_classification", "device": "cpu",
        "labels": [{"id": i, "name": n} for i, n in enumerate(labels)],
        "adapter": adapter or {"kind": "none"},
    })


@torch.no_grad()
def reference_seq_cls(model, tok, texts):
    return torch.stack([model(**tok(t, return_tensors="pt")).logits[0] for t in texts]).float()


def random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14))) for _ in range(n)]


def train_tokenizer(out_dir: Path) -> PreTrainedTokenizerFast:
    """A word-level tokenizer (every label word is one token) with a chat template."""
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = CORPUS + [PROMPT_WORDS] * 5
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(vocab_size=400, special_tokens=SPECIALS))
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.token_to_id("<bos>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
        additional_special_tokens=SPECIALS[4:],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def causal_config(arch: str, vocab: int, tok, **sizes) -> object:
    # Every projection is 64 wide so bitsandbytes 4-bit can quantize it.
    common = dict(vocab_size=vocab, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                  eos_token_id=tok.eos_token_id)
    if arch == "gpt2":
        return GPT2Config(n_embd=64, n_layer=2, n_head=2, n_positions=256, **common)
    dims = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=2, head_dim=32, max_position_embeddings=256) | sizes
    if arch == "llama":
        return LlamaConfig(tie_word_embeddings=False, **dims, **common)
    if arch == "gemma":
        return GemmaConfig(**dims, **common)
    if arch == "gemma2":
        return Gemma2Config(query_pre_attn_scalar=32, sliding_window=16, **dims, **common)
    raise ValueError(arch)


def build_causal_base(out_dir: Path, arch: str, seed: int = 0, **sizes) -> Path:
    """Save a random *ForCausalLM checkpoint + tokenizer, as hub base models come; ``sizes``
    overrides config dimensions (hidden_size, num_hidden_layers, ...)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(out_dir)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(causal_config(arch, len(tok), tok, **sizes))
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


@torch.no_grad()
def make_labels_answerable(base_dir: Path, prompts: list[str], label_ids: list[int], seed: int = 0,
                           margin: float = 30.0, spread: float = 3.0) -> None:
    """Rewrite the label tokens' ``lm_head`` rows so that after these prompts a random model
    answers with a label word, and which one depends on the input.

    Row i = margin * mu / |mu|^2 + spread * (random mix of the main directions in which the last
    hidden state varies between prompts): every label logit is then about ``margin`` (far above the
    other tokens), and their order follows the input. Without this, greedy generation of a random
    model rarely names a label and the verbalizer-vs-generation check would be vacuous.
    """
    tok = PreTrainedTokenizerFast.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    hs = [model.base_model(**tok(p, add_special_tokens=False, return_tensors="pt")).last_hidden_state[0, -1]
          for p in prompts]
    h = torch.stack(hs)
    mu = h.mean(0)
    _, _, vt = torch.linalg.svd(h - mu, full_matrices=False)
    k = len(label_ids)
    comps = vt[:k]
    std = ((h - mu) @ comps.T).std(0)
    mix = torch.randn(k, k, generator=torch.Generator().manual_seed(seed))
    rows = margin * mu / mu.dot(mu) + spread * (mix / std) @ comps
    model.get_output_embeddings().weight[torch.tensor(label_ids)] = rows
    model.save_pretrained(base_dir, safe_serialization=True)


def randomize_lora(peft_model, seed: int, scale: float = 0.05) -> None:
    """peft initialises lora_B to zero (a no-op adapter); give every LoRA weight random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * scale)


def save_lora(base_dir: Path, out_dir: Path, *, head: str, labels: tuple[str, ...], target_modules, r: int,
              alpha: float, dropout: float, seed: int = 1, with_head: bool = True):
    """Build a peft LoRA adapter on the base, randomise it (and the head), save it; returns the
    in-memory PeftModel (fp32) as the reference."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    if head == "sequence_classification":
        model = AutoModelForSequenceClassification.from_pretrained(
            base_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={n: i for i, n in enumerate(labels)},
        )
        task = "SEQ_CLS" if with_head else None
    else:
        model = AutoModelForCausalLM.from_pretrained(base_dir)
        task = "CAUSAL_LM"
    targets = "all-linear" if list(target_modules) == ["all-linear"] else list(target_modules)  # peft's keyword
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                     task_type=task, fan_in_fan_out=model.config.model_type == "gpt2")
    peft_model = get_peft_model(model, cfg)
    randomize_lora(peft_model, seed)
    if head == "sequence_classification" and with_head:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "modules_to_save" in name:
                    p.copy_(torch.randn(p.shape, generator=g))
    peft_model.save_pretrained(out_dir, safe_serialization=True)
    return peft_model.eval()


def lora_for(spec, base, out, **kw):
    """``save_lora`` with the spec's head, labels and LoRA settings."""
    lo = spec.adapter.lora
    return save_lora(base, out, head=spec.head, labels=spec.label_names, target_modules=lo.target_modules,
                     r=lo.r, alpha=lo.alpha, dropout=lo.dropout, **kw)


def save_sparta_adapter(base_dir: Path, out_dir: Path, sparsity: float, scale: float = 0.05, seed: int = 2):
    """Train-shaped SpaRTA adapter via peft-sparta's own wrapper, random deltas, saved in its format;
    returns the merged model as the reference."""
    from peft_sparta import SpaRTA

    from models.sparta import save_from_sparta_model

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_dir, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    head_init = model.score.weight.detach().clone()
    # peft-sparta freezes modules by name; what is left on a Gemma layer is Wv / Wo (S0's targets).
    sparta = SpaRTA(model, sparsity=sparsity)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, d in sparta.deltas.items():
            d.copy_(torch.randn(d.shape, generator=g) * scale)
    save_from_sparta_model(sparta, out_dir, base_model=str(base_dir), head_init=head_init)
    sparta.eval()  # merges the deltas into sparta.model: the reference
    return sparta.model

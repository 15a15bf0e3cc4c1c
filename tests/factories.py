"""Builders for tiny real models: random weights from a config, a tokenizer trained here."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

CORPUS = [
    "the movie was great and i loved it",
    "terrible service, never again",
    "what a wonderful day at the beach",
    "this is the worst product i have bought",
    "not bad at all, quite good actually",
    "i hate waiting in line for hours",
    "absolutely fantastic experience with friends",
    "the food was cold and bland",
    "okay i guess, nothing special",
    "best concert of the year! so happy",
] * 20


def train_wordpiece_tokenizer(out_dir: Path, vocab_size: int = 200) -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer trained on a small local corpus (no hub access)."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special))
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.save_pretrained(out_dir)
    return fast


def build_tiny_bert(
    out_dir: Path,
    labels: tuple[str, ...] = ("negative", "positive"),
    seed: int = 0,
    hidden: int = 64,
) -> Path:
    """Save a tiny random BertForSequenceClassification with its tokenizer in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = train_wordpiece_tokenizer(out_dir)
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
        pad_token_id=tok.pad_token_id,
    )
    model = BertForSequenceClassification(cfg).eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def copy_tokenizer(src: Path, dst: Path) -> None:
    """The tokenizer files of a model directory, for a variant of the model saved elsewhere."""
    for f in Path(src).iterdir():
        if "token" in f.name or f.name == "vocab.txt":
            (Path(dst) / f.name).write_bytes(f.read_bytes())


def build_lora_adapter(base_dir: Path, out_dir: Path, seed: int) -> Path:
    """A LoRA adapter (random, non-zero B so it changes outputs) with the classifier head saved."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    base = BertForSequenceClassification.from_pretrained(base_dir)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], modules_to_save=["classifier"],
                     init_lora_weights=False, task_type="SEQ_CLS")
    model = get_peft_model(base, cfg)
    with torch.no_grad():
        model.base_model.model.classifier.modules_to_save["default"].weight.normal_(0, 0.5)
    model.save_pretrained(out_dir, safe_serialization=True)
    return Path(out_dir)

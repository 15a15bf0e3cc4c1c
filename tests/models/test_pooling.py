"""Mean pooling: what it computes, where its setting comes from, and bad records."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from models.errors import AdapterError, ModelLoadError
from models.pooling import MeanPooler, adapter_pooling, base_pooling, pooling_of, use_mean_pooling


def test_mean_pooler_reads_the_masked_mean_of_the_last_hidden_states(tiny_bert_dir):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    batch = tok(["good film", "a much longer and rather dull film about nothing"], padding=True,
                return_tensors="pt")
    assert batch["attention_mask"][0].sum() < batch["attention_mask"].shape[1]  # row 0 is padded
    use_mean_pooling(model)
    assert pooling_of(model) == "mean"
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
        h, m = out.hidden_states[-1], batch["attention_mask"].unsqueeze(-1).float()
        pooler = model.bert.pooler
        expected = model.classifier(pooler.activation(pooler.dense((h * m).sum(1) / m.sum(1))))
    assert isinstance(pooler, MeanPooler)
    assert torch.allclose(out.logits, expected, atol=1e-6)
    with torch.no_grad():  # the mask passed positionally is found too
        positional = model(batch["input_ids"], batch["attention_mask"]).logits
    assert torch.allclose(positional, expected, atol=1e-6)
    names = set(model.state_dict())
    assert {"bert.pooler.dense.weight", "bert.pooler.dense.bias"} <= names  # adapters keep their keys
    assert use_mean_pooling(model) is model and pooling_of(model) == "mean"  # applying twice is a no-op


def test_a_model_without_a_pooler_is_refused():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ModelLoadError, match="mean pooling needs a BERT-style pooler"):
        use_mean_pooling(model)


def test_base_pooling_comes_from_the_sentence_transformers_config(tmp_path):
    assert base_pooling(tmp_path) == "cls"  # not a sentence-transformers model
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling").mkdir()
    conf = tmp_path / "1_Pooling" / "config.json"
    conf.write_text(json.dumps({"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}))
    assert base_pooling(tmp_path) == "mean"
    conf.write_text(json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    assert base_pooling(tmp_path) == "cls"


def test_the_shipped_default_base_declares_mean_pooling():
    from models.loading import default_model_dir

    assert base_pooling(default_model_dir()) == "mean"


def test_adapter_pooling_record_and_bad_records(tmp_path):
    assert adapter_pooling(tmp_path) == "cls"  # no training record: transformers' [CLS] pooler
    meta = tmp_path / "sentistream_training.json"
    meta.write_text(json.dumps({"pooling": "mean"}))
    assert adapter_pooling(tmp_path) == "mean"
    meta.write_text(json.dumps({"pooling": "max"}))
    with pytest.raises(AdapterError, match="pooling 'max' is not one of"):
        adapter_pooling(tmp_path)
    meta.write_text("{not json")
    with pytest.raises(AdapterError, match="sentistream_training.json is not JSON"):
        adapter_pooling(tmp_path)

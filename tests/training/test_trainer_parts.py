"""Trainer building blocks: class weights, schedule, batching, replay window, `train --train-file`."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from schemas.settings import TrainingSettings
from training.errors import TrainingError
from training.readers import Example
from training.dataset import window
from training.batches import length_batches
from training.loop import lr_factor, progress_of
from training.trainer import class_weights


def test_auto_class_weights_are_inverse_frequency():
    y = np.array([0] * 6 + [1] * 2 + [2] * 2)
    w = class_weights(TrainingSettings(labels=("a", "b", "c")), y, 3)
    assert w.tolist() == pytest.approx([10 / 18, 10 / 6, 10 / 6])
    # A class absent from the data keeps weight 1 instead of dividing by zero.
    assert class_weights(TrainingSettings(), np.array([0, 0, 0]), 2).tolist() == [1.0, 1.0]
    assert class_weights(TrainingSettings(class_weights="none"), y, 3) is None
    with pytest.raises(TrainingError, match="3 values for 2 labels"):
        class_weights(TrainingSettings(class_weights=(1.0, 2.0, 3.0)), y, 2)


def test_schedule_warms_up_then_decays_to_zero_by_steps_or_budget():
    cfg = TrainingSettings(warmup_ratio=0.1)
    assert lr_factor(cfg, 0.05) == pytest.approx(0.5)
    assert lr_factor(cfg, 0.1) == pytest.approx(1.0)
    assert lr_factor(cfg, 0.55) == pytest.approx(0.5)
    assert lr_factor(cfg, 1.0) == 0.0
    budget = TrainingSettings(max_train_seconds=100)
    assert progress_of(10, 1000, time.monotonic() - 50, budget) == pytest.approx(0.5, abs=0.01)
    assert progress_of(10, 1000, time.monotonic() - 50, TrainingSettings()) == pytest.approx(0.01)


def test_length_batches_cover_every_example_once_and_group_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=1000).tolist()
    batches = length_batches(lengths, 32, rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 10  # vs ~55 for random batches


def test_window_keeps_newest_plus_seeded_replay():
    ex = [Example(f"m{i}", "t", "positive") for i in range(100)]
    cfg = TrainingSettings(window_labels=20, replay_labels=10)
    got = window(ex, cfg)
    assert [e.message_id for e in got[-20:]] == [f"m{i}" for i in range(80, 100)]
    assert len(got) == 30 and all(int(e.message_id[1:]) < 80 for e in got[:10])
    assert window(ex, cfg) == got
    assert window(ex, TrainingSettings()) == ex


def test_train_from_file_cli(tiny_bert_dir, tmp_path, capsys):
    from schemas.cli import main

    rows = ["sentence\tlabel"] + [f"{w} movie and food\t{lab}" for i in range(60)
                                  for w, lab in ((["great", "best", "happy"][i % 3], 1), (["cold", "worst", "hate"][i % 3], 0))]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\ngreat food\t1\nworst movie\t0\n")
    out = tmp_path / "adapter"
    code = main(["train", "--train-file", str(tmp_path / "train.tsv"), "--eval-file", str(tmp_path / "dev.tsv"),
                 "--out", str(out), "--set", f"base_model={tiny_bert_dir}", "--set", "epochs=2",
                 "--set", "learning_rate=0.01", "--set", 'target_modules=["query","value","word_embeddings"]',
                 "--set", "val_fraction=0.2"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["eval"]["n"] == 2 and summary["train"] + summary["val"] == 6  # duplicate texts share an id
    assert {p.name for p in out.iterdir()} == {"adapter_config.json", "adapter_model.safetensors",
                                               "sentistream_training.json"}
    assert {"classifier", "pooler"} <= set(json.loads((out / "adapter_config.json").read_text())["modules_to_save"])
    assert (tmp_path / "adapter-report" / "confusion_matrix.png").is_file()


def test_bad_set_value_names_the_setting(capsys):
    from schemas.cli import main

    assert main(["train", "--train-file", "x.tsv", "--set", "lora_r=-1"]) == 2
    assert "training.lora_r" in capsys.readouterr().err

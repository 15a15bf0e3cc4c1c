"""The presets shipped with adapters trained on real weights, served by `sentistream classify` as a
subprocess: S2 (Gemma 3 270M) on 500 Korean KOTE test comments within 3 points of the accuracy its
benchmark recorded on the same rows, S0 on a few SST-2 dev sentences, S1 and S3 (SmolLM2-135M) on the
TweetEval test rows their benchmark scored. Skipped where a base is not prepared (`make real-models`,
which `make test` runs); the data is read from $SENTISTREAM_DATA_DIR."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import kote
from models.errors import ModelLoadError
from tests.cli.runner import clean_env, json_lines, sentistream

REPO = Path(__file__).resolve().parents[2]
S2, S0 = "s2-gemma3-270m-lora-kote", "s0-gemma3-270m-sparta-sst2"
S2_REPORT = REPO / "benchmarks" / "reports" / "s2-gemma3-270m-kote" / "metrics.json"
N = 500
TOLERANCE = 0.03

pytestmark = pytest.mark.real_models


def unprepared(preset: str) -> str | None:
    """None when the preset's base is prepared, else why not (the loader's message)."""
    from models.packages import resolve_package_base
    from models.spec import load_spec
    from schemas.settings import Settings

    try:
        resolve_package_base(load_spec(preset), Settings().model.cache_dir)
    except ModelLoadError as e:
        return str(e)
    return None


def env_for(preset: str) -> dict[str, str]:
    why = unprepared(preset)
    if why is not None:
        pytest.skip(f"{preset}'s base is not prepared (`make real-models`): {why}")
    # clean_env drops SENTISTREAM_*; where the models and data lie still holds for the subprocess.
    keep = {k: os.environ[k] for k in ("SENTISTREAM_MODEL__CACHE_DIR", "SENTISTREAM_DATA_DIR") if k in os.environ}
    return clean_env(**keep)


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return env_for(S2)


def classify(preset: str, texts: list[str], env: dict[str, str]) -> list[str]:
    proc = sentistream("classify", env=env | {"SENTISTREAM_MODEL__PRESET": preset},
                       stdin="".join(t + "\n" for t in texts).encode(), timeout=900)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    rows = json_lines(proc.stdout)
    assert [r["message_id"] for r in rows] == [str(i) for i in range(len(texts))]
    return [r["label"] for r in rows]


def test_s2_classifies_korean_kote_within_3_points_of_its_benchmark(env):
    recorded = json.loads(S2_REPORT.read_text())["test"][f"accuracy_first_{N}"]
    rows = kote.fixed_sample(kote.read("test"), N)  # the benchmark's first 500 test rows
    got = classify(S2, [e.text for e in rows], env)
    accuracy = sum(g == e.label for g, e in zip(got, rows)) / N
    assert abs(accuracy - recorded) <= TOLERANCE, (accuracy, recorded)
    assert set(got) <= set(kote.LABELS)


def test_s0_classifies_sst2_dev_sentences(env):
    import csv

    path = kote.kote_dir().parent / "sst2" / "dev.tsv"
    with path.open(encoding="utf-8", newline="") as f:
        dev = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:8]
    got = classify(S0, [r["sentence"].strip() for r in dev], env)
    gold = ["positive" if r["label"] == "1" else "negative" for r in dev]
    assert set(got) <= {"negative", "positive"}
    assert sum(g == y for g, y in zip(got, gold)) >= 6, list(zip(got, gold))


@pytest.mark.parametrize("card", ["s1", "s3"])
def test_smollm2_cards_classify_tweets_as_their_benchmark_measured(card):
    """The first 100 rows of the benchmark's fixed TweetEval test subsample, whose verbalizer
    macro-F1 the benchmark recorded. 5 points: 100 rows, and bf16 hardware computes in bf16 where
    the benchmark's CPU computed in float32."""
    from benchmarks import real_cards
    from training.metrics import compute_metrics

    env = env_for(real_cards.PRESETS[card])
    report = REPO / "benchmarks" / "reports" / f"smollm2-135m-{card}-qlora-verbalizer-tweeteval" / "metrics.json"
    recorded = json.loads(report.read_text())
    rows = real_cards.subsample(real_cards.rows("test"), recorded["test_n"], recorded["seed"])[:recorded["generate_n"]]
    got = classify(real_cards.PRESETS[card], [e.text for e in rows], env)
    m = compute_metrics([real_cards.LABELS.index(e.label) for e in rows],
                        [real_cards.LABELS.index(g) for g in got], real_cards.LABELS)
    assert abs(m["macro_f1"] - recorded["verbalizer_on_generate_rows"]) <= 0.05, (m["macro_f1"], recorded)

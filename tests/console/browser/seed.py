"""The browser test's database content: real SST-2 review sentences with the scores a good model gives
(mostly sure and right, a tail of unsure and wrong ones, so the queue's margin-weighted draw has a spread
to weigh), over three sources and the last 50 minutes, a few dead letters, and an SST-2 labels file to
import as earlier labelling work.

The scores are drawn, not computed: the shipped adapter was trained on these sentences and is sure of
nearly all of them, and classifying them would cost the module half a minute."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from schemas.db import DeadLetterRow, PredictionRow, make_engine
from schemas.scores import margin

SOURCES = ("web-reviews", "app-reviews", "partner-feed")
LABELS = ("negative", "positive")  # SST-2's 0 and 1, training.labels' default order
# Rows of train.tsv the predictions use; the imported labels come from other rows, so no text is both.
FIRST_ROW, MESSAGES, IMPORTED = 1000, 240, 120
MODEL_VERSION, ADAPTER_VERSION = "minilm-lora-sst2", "minilm-sst2"


@dataclass(frozen=True)
class Seeded:
    truth: dict[str, str]  # message id -> SST-2's label: what a careful labeller presses
    texts: dict[str, str]  # message id -> text
    predicted: dict[str, str]  # message id -> the seeded prediction's label
    margins: dict[str, float]  # message id -> the margin the queue weighs by
    labels_file: Path  # SST-2 rows in train.tsv's layout, for ``sentistream labels import``


def sst2_rows(data_dir: Path, start: int, count: int) -> list[tuple[str, str]]:
    """(sentence, label name) of ``count`` non-blank rows of train.tsv from row ``start`` on."""
    out = []
    with (data_dir / "sst2" / "train.tsv").open(newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)):
            if i >= start and row["sentence"].strip():
                out.append((row["sentence"].strip(), LABELS[int(row["label"])]))
            if len(out) == count:
                break
    return out


def scores(truth: str, rng: random.Random) -> dict[str, float]:
    """The probability of the true label ~ Beta(4, 1): mean 0.8, about 6% below one half (wrong)."""
    p = rng.betavariate(4, 1)
    other = LABELS[1 - LABELS.index(truth)]
    return {truth: p, other: 1.0 - p}


def prediction_rows(rows: list[tuple[str, str]], now: datetime) -> list[dict]:
    rng = random.Random(7)
    out = []
    for i, (text, truth) in enumerate(rows):
        sc = scores(truth, rng)
        label = max(LABELS, key=sc.__getitem__)
        at, latency = now - timedelta(minutes=50) + timedelta(seconds=12.5 * i), rng.uniform(20, 90)
        out.append({
            "message_id": f"review-{FIRST_ROW + i}", "text": text, "label": label, "label_id": LABELS.index(label),
            "scores": sc, "confidence": sc[label], "model_version": MODEL_VERSION, "adapter_version": ADAPTER_VERSION,
            "source": SOURCES[i % len(SOURCES)], "lang": "en", "lang_supported": True, "author": None,
            "message_created_at": None, "topic": "reviews", "partition": i % 3, "offset": i // 3,
            "latency_ms": latency, "received_at": at - timedelta(milliseconds=latency), "classified_at": at,
            "margin": margin(sc),
        })
    return out


def dead_letter_rows(now: datetime) -> list[dict]:
    kinds = ("empty_text", "empty_text", "oversized_text", "schema_violation")
    return [{"topic": "reviews", "partition": 0, "offset": 10_000 + i, "message_id": f"dead-{i}", "key": None,
             "original": json.dumps({"id": f"dead-{i}"}).encode(), "error_kind": kind,
             "error_text": f"{kind}: rejected by the decoder", "failed_at": now - timedelta(minutes=5 * i)}
            for i, kind in enumerate(kinds)]


def write_labels_file(rows: list[tuple[str, str]], dest: Path) -> Path:
    with dest.open("w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        f.writelines(f"{text}\t{LABELS.index(label)}\n" for text, label in rows)
    return dest


def seed(url: str, data_dir: Path, tmp: Path) -> Seeded:
    now = datetime.now(UTC)
    rows = sst2_rows(data_dir, FIRST_ROW, MESSAGES)
    predictions = prediction_rows(rows, now)
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(insert(PredictionRow), predictions)
        c.execute(insert(DeadLetterRow), dead_letter_rows(now))
    engine.dispose()
    ids = [p["message_id"] for p in predictions]
    return Seeded(truth=dict(zip(ids, (label for _, label in rows))), texts=dict(zip(ids, (t for t, _ in rows))),
                  predicted={p["message_id"]: p["label"] for p in predictions},
                  margins={p["message_id"]: p["margin"] for p in predictions},
                  labels_file=write_labels_file(sst2_rows(data_dir, 0, IMPORTED), tmp / "sst2-earlier.tsv"))

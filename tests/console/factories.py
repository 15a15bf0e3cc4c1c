"""A console database for tests (and benchmarks): predictions with known margins, dead letters, two
registered adapters and one user per role."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from console.users import add_user
from schemas.db import DeadLetterRow, PredictionRow
from schemas.registry import promote, register
from schemas.scores import margin

ROLES = ("viewer", "labeller", "curator", "admin")
CHANNEL = "sentistream_adapters"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def password(user: str) -> str:
    return f"{user}-password"


@dataclass(frozen=True)
class Seeded:
    """What the seed wrote: message ids by ascending margin, the active and the retired-to-be versions."""
    by_margin: list[str]
    active: str
    candidate: str


def prediction(i: int, positive: float, source: str, at: datetime, text_: str | None = None) -> dict:
    scores = {"negative": 1.0 - positive, "positive": positive}
    label = "positive" if positive >= 0.5 else "negative"
    return {"message_id": f"m{i:03d}", "text": text_ or f"message number {i}", "label": label,
            "label_id": int(label == "positive"), "scores": scores, "confidence": max(scores.values()),
            "model_version": "tiny", "adapter_version": "v1", "source": source, "lang": "en",
            "topic": "in", "partition": 0, "offset": i, "latency_ms": 1.0, "received_at": at,
            "classified_at": at, "margin": margin(scores)}


def seed_predictions(engine: Engine, n: int = 20) -> list[str]:
    """``n`` predictions in the last ``n`` minutes, margins all different (0.02 apart); every third is a
    review, the rest tweets; m001 and m004 mention coffee. Returns the ids by ascending margin."""
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        positive = 0.5 + 0.01 * (i + 1) if i % 2 else 0.5 - 0.01 * (i + 1)
        coffee = "the coffee was great" if i in (1, 4) else None
        rows.append(prediction(i, positive, "reviews" if i % 3 == 0 else "tweets", now - timedelta(minutes=i),
                               coffee))
    with engine.begin() as c:
        c.execute(PredictionRow.__table__.insert(), rows)
        c.execute(DeadLetterRow.__table__.insert(), [
            {"topic": "in", "partition": 0, "offset": 1000 + k, "message_id": None, "key": None, "original": b"x",
             "error_kind": kind, "error_text": "seeded", "failed_at": now} for k, kind in
            enumerate(["empty_text", "empty_text", "bad_json"])])
    return [r["message_id"] for r in sorted(rows, key=lambda r: (r["margin"], r["message_id"]))]


def seed_adapters(engine: Engine, reports: Path | None = None) -> tuple[str, str]:
    """v1 active (trained on 50/50 labels, gold accuracy 0.9), v2 a candidate; report plots for v2 when
    ``reports`` is given."""
    gold = {"n": 10, "accuracy": 0.9, "macro_f1": 0.88, "labels": ["negative", "positive"],
            "confusion_matrix": [[4, 1], [0, 5]]}
    for version, counts in (("v1", {"negative": 50, "positive": 50}), ("v2", {"negative": 60, "positive": 40})):
        register(engine, name="default", version=version, kind="lora", base_model="tiny", artifact_path=Path("/x"),
                 sha256="0" * 64, metrics={"gold": gold, "train_label_counts": counts},
                 parent_version=None if version == "v1" else "v1", label_watermark=0)
    promote(engine, "v1", channel=CHANNEL)
    if reports is not None:
        (reports / "v2").mkdir(parents=True, exist_ok=True)
        (reports / "v2" / "confusion_matrix.png").write_bytes(b"\x89PNG\r\n\x1a\nseeded")
    return "v1", "v2"


def seed_users(engine: Engine) -> None:
    for role in ROLES:
        add_user(engine, role, role, password(role))


def seed_console(engine: Engine, reports: Path | None = None) -> Seeded:
    by_margin = seed_predictions(engine)
    active, candidate = seed_adapters(engine, reports)
    seed_users(engine)
    with engine.begin() as c:
        c.execute(text("ANALYZE predictions"))
    return Seeded(by_margin, active, candidate)


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sentistream console exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/login", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"sentistream console did not answer within {deadline_s} s: {log.read_text()[-2000:]}")

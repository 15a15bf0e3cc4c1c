"""The gate rule, and promote / reject / rollback on a real Postgres (with the NOTIFY the daemon waits for)."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import make_url

from schemas.db import make_engine
from training import registry
from training.errors import RegistryError
from training.gate import decide
from training.metrics import compute_metrics

LABELS = ("negative", "neutral", "positive")
CHANNEL = "sentistream_adapters"


def metrics(y_true, y_pred):
    return compute_metrics(y_true, y_pred, LABELS)


TRUE = [0] * 10 + [1] * 10 + [2] * 10


def test_new_labels_the_active_adapter_contradicts_far_more_than_gold_are_rejected():
    active = metrics(TRUE, [0] * 8 + [1] * 2 + [1] * 8 + [2] * 2 + [2] * 8 + [0] * 2)  # gold error 0.2
    cand = metrics(TRUE, [0] * 9 + [1] + [1] * 9 + [2] + [2] * 9 + [0])
    assert decide(cand, active, new_label_error=0.3, label_noise_tolerance=0.15).promote
    d = decide(cand, active, new_label_error=0.4, label_noise_tolerance=0.15)
    assert not d.promote
    assert "contradicts 40.0% of the new labels against 20.0% of the gold set" in d.reasons[-1]
    assert decide(cand, active, new_label_error=0.9).promote  # tolerance 1: the check is off


def test_better_candidate_is_promoted():
    active = metrics(TRUE, [0] * 8 + [1] * 2 + [1] * 8 + [2] * 2 + [2] * 8 + [0] * 2)
    cand = metrics(TRUE, [0] * 9 + [1] + [1] * 9 + [2] + [2] * 9 + [0])
    d = decide(cand, active, margin=0.01)
    assert d.promote, d.reasons
    assert "macro_f1" in d.reasons[0]


def test_candidate_within_margin_is_rejected():
    active = metrics(TRUE, [0] * 9 + [1] + [1] * 9 + [2] + [2] * 9 + [0])
    d = decide(active, active, margin=0.0)
    assert not d.promote
    assert "does not beat" in d.reasons[0]


def test_class_recall_drop_rejects_even_when_macro_f1_rises():
    active = metrics(TRUE, [0] * 10 + [1] * 5 + [0] * 5 + [2] * 5 + [0] * 5)
    # Much better on neutral/positive, but negative recall falls from 1.0 to 0.9.
    cand = metrics(TRUE, [0] * 9 + [1] + [1] * 10 + [2] * 10)
    assert cand["macro_f1"] > active["macro_f1"]
    d = decide(cand, active, recall_tolerance=0.05)
    assert not d.promote
    assert any("recall of 'negative' drops 0.1000" in r for r in d.reasons)
    assert decide(cand, active, recall_tolerance=0.1).promote


def test_first_adapter_is_promoted():
    assert decide(metrics(TRUE, TRUE), None).reasons == ["no active adapter"]


def _add(engine, version, gold_f1, watermark=0):
    registry.register(engine, name="default", version=version, kind="lora", base_model="tiny",
                      artifact_path=f"/adapters/{version}", sha256="0" * 64,
                      metrics={"gold": {"macro_f1": gold_f1}}, parent_version=None, label_watermark=watermark)


def _listen(database_url):
    conn = psycopg.connect(make_url(database_url).set(drivername="postgresql").render_as_string(False),
                           autocommit=True)
    conn.execute(f"LISTEN {CHANNEL}")
    return conn


def _notifications(conn) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=1.0, stop_after=10)]


def test_promote_reject_rollback_on_postgres(database_url):
    engine = make_engine(database_url)
    listener = _listen(database_url)
    _add(engine, "v1", 0.70)
    registry.promote(engine, "v1", channel=CHANNEL, reasons=["no active adapter"])
    _add(engine, "v2", 0.80)
    out = registry.promote(engine, "v2", channel=CHANNEL)
    assert out["previous"] == "v1"
    _add(engine, "v3", 0.60, watermark=42)
    registry.reject(engine, "v3", ["macro_f1 0.6000 does not beat active 0.8000 + margin 0"])

    status = {r["version"]: r["status"] for r in registry.list_adapters(engine, "default")}
    assert status == {"v1": "retired", "v2": "active", "v3": "rejected"}
    assert registry.get(engine, "v3")["reasons"] == ["macro_f1 0.6000 does not beat active 0.8000 + margin 0"]
    assert registry.latest(engine, "default")["label_watermark"] == 42
    assert _notifications(listener) == ["v1", "v2"]  # nothing for a rejection

    back = registry.rollback(engine, "default", channel=CHANNEL)
    assert back == {"name": "default", "from": "v2", "to": "v1"}
    assert registry.active(engine, "default")["version"] == "v1"
    assert registry.get(engine, "v2")["status"] == "rejected"
    assert _notifications(listener) == ["v1"]
    with pytest.raises(RegistryError, match="no retired version"):
        registry.rollback(engine, "default", channel=CHANNEL)
    listener.close()
    engine.dispose()


def test_promote_unknown_version_names_the_fix(database_url):
    engine = make_engine(database_url)
    with pytest.raises(RegistryError, match="no adapter version 'nope'.*adapters list"):
        registry.promote(engine, "nope", channel=CHANNEL)
    with pytest.raises(RegistryError, match="no active version"):
        registry.rollback(engine, "default", channel=CHANNEL)
    engine.dispose()


def test_only_one_active_row_per_name(database_url):
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    engine = make_engine(database_url)
    _add(engine, "a", 0.5)
    _add(engine, "b", 0.6)
    registry.promote(engine, "a", channel=CHANNEL)
    with pytest.raises(IntegrityError), engine.begin() as c:
        c.execute(update(registry.T).where(registry.T.c.version == "b").values(status="active"))
    engine.dispose()


def test_cli_adapters_list_promote_rollback(database_url, monkeypatch, capsys):
    from schemas.cli import main

    engine = make_engine(database_url)
    _add(engine, "c1", 0.5)
    _add(engine, "c2", 0.6)
    monkeypatch.setenv("SENTISTREAM_DATABASE__URL", database_url)
    assert main(["adapters", "promote", "c1"]) == 0
    assert main(["adapters", "promote", "c2"]) == 0
    assert main(["adapters", "rollback"]) == 0
    assert "rolled back default: c2 -> c1" in capsys.readouterr().out
    assert main(["adapters", "list", "-v"]) == 0
    out = capsys.readouterr().out
    assert "c1" in out and "active" in out and "rolled back by operator" in out
    assert main(["adapters", "promote", "missing"]) == 2
    engine.dispose()

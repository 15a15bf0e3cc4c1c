"""The labelling queue at its default random share: unsure messages first (a draw weighted by
1 − margin), never a message the user labelled, labels written with the labeller's name and origin
'console', undo, progress."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from console import queries
from console.app import build_app
from console.queue import SKIP_BUDGET_CHARS, next_message, remember_skip
from console.selection import RANDOM_SHARE
from schemas.db import PredictionRow, make_engine
from schemas.settings import TrainingSettings
from tests.console.conftest import csrf, login, settings_for
from tests.console.factories import prediction

MESSAGE = '<article id="message" data-message-id="'


def shown(page: str) -> tuple[str, str]:
    """The message id and pick reason the labelling page shows."""
    start = page.index(MESSAGE) + len(MESSAGE)
    mid = page[start:page.index('"', start)]
    reason = page.split('data-reason="', 1)[1].split('"', 1)[0]
    return mid, reason


def labels_of(engine, user: str) -> list[tuple]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(text(
            "SELECT message_id, label, origin FROM labels WHERE labeled_by = :u ORDER BY id"), {"u": user})]


def test_the_page_shows_the_queues_pick_with_the_models_label(as_user, console_db, app):
    c = as_user("labeller")
    # The page draws with the app's rng: seeded, the same draw through the API is the page's.
    app.state.console.rng.seed(1)
    with console_db.engine.connect() as conn:
        expected = next_message(conn, "labeller", [], random.Random(1))
    page = c.get("/label").text
    assert shown(page) == (expected.item.message_id, expected.reason)
    assert 'id="label-1" data-key="1">1 · negative' in page and 'id="label-2" data-key="2">2 · positive' in page


def test_labelling_writes_a_console_label_and_the_queue_never_repeats_it(as_user, console_db):
    c = as_user("labeller")
    seen = []
    for _ in range(len(console_db.seeded.by_margin)):
        page = c.get("/label").text
        mid, _ = shown(page)
        assert mid not in seen
        seen.append(mid)
        r = c.post("/label", data={"message_id": mid, "label": "positive", "csrf_token": csrf(c, "/label")},
                   follow_redirects=False)
        assert r.status_code == 303
    assert 'id="queue-empty"' in c.get("/label").text
    assert sorted(seen) == sorted(console_db.seeded.by_margin)
    assert labels_of(console_db.engine, "labeller") == [(m, "positive", "console") for m in seen]


@pytest.fixture
def unsure_and_sure(make_database):
    """20 unsure messages (margin 0.1, u00..u19) and 20 sure ones (margin 0.9, s00..s19)."""
    engine = make_engine(make_database())
    now = datetime.now(UTC)
    rows = [prediction(i, 0.55, "tweets", now) | {"message_id": f"u{i:02d}"} for i in range(20)]
    rows += [prediction(i, 0.95, "tweets", now) | {"message_id": f"s{i:02d}"} for i in range(20)]
    with engine.begin() as c:
        c.execute(PredictionRow.__table__.insert(), rows)
    try:
        yield engine
    finally:
        engine.dispose()


def test_the_queue_serves_unsure_messages_first_with_its_random_share(unsure_and_sure):
    """Through the API at the default RANDOM_SHARE: an unsure message is nine times as likely to be
    drawn as a sure one, so most of the first 20 are unsure; every message comes once, then none."""
    rng, served, reasons = random.Random(7), [], []
    with unsure_and_sure.begin() as c:
        for _ in range(40):
            nxt = next_message(c, "api-user", [], rng)
            served.append(nxt.item.message_id)
            reasons.append(nxt.reason)
            queries.write_label(c, nxt.item.message_id, "negative", "api-user")
        assert next_message(c, "api-user", [], rng).item is None
    assert len(set(served)) == 40
    assert sum(m.startswith("u") for m in served[:20]) >= 14  # a uniform draw would average 10
    assert set(reasons) <= {"margin", "random"} and reasons.count("margin") >= 40 * (1 - RANDOM_SHARE) / 2


def test_the_weighted_draw_in_sql_follows_one_minus_margin(console_db):
    """Two messages left, margins 0.0 and 0.5 (weights 1 and 0.5): over 400 seeds the less sure one
    is drawn about two times in three, as console.selection.key says."""
    low, high = "m000", "m001"
    with console_db.engine.begin() as c:
        c.execute(text("UPDATE predictions SET margin = CASE message_id WHEN :low THEN 0.0 ELSE 0.5 END "
                       "WHERE message_id IN (:low, :high)"), {"low": low, "high": high})
        for mid in console_db.seeded.by_margin:
            if mid not in (low, high):
                queries.write_label(c, mid, "negative", "u")
        drawn = [queries.next_weighted(c, "u", 100.0, i / 400).message_id for i in range(400)]
    assert set(drawn) == {low, high}
    assert abs(drawn.count(low) / 400 - 2 / 3) < 0.07  # three standard deviations of a binomial share


def test_a_sample_with_nothing_unlabelled_falls_back_to_the_least_margin(console_db, monkeypatch):
    # An empty page sample (a stale row estimate on a shrunk table) is simulated: the draws find nothing.
    monkeypatch.setattr(queries, "next_weighted", lambda *a, **k: None)
    monkeypatch.setattr(queries, "next_random", lambda *a, **k: None)
    with console_db.engine.connect() as c:
        nxt = next_message(c, "u", [], random.Random(1))
    assert (nxt.item.message_id, nxt.reason) == (console_db.seeded.by_margin[0], "margin")


def test_the_random_share_and_the_weighted_draw_take_only_unlabelled_messages(console_db):
    with console_db.engine.begin() as c:
        for mid in console_db.seeded.by_margin[:-1]:
            queries.write_label(c, mid, "negative", "u")
        for seed in (0.1, 0.5, 0.9):
            for draw in (queries.next_random, queries.next_weighted):
                assert draw(c, "u", 100.0, seed).message_id == console_db.seeded.by_margin[-1]
    assert queries.sample_percent(100) == 100.0 and queries.sample_percent(10_000_000) < 0.01


def test_the_row_estimate_counts_rows_written_since_the_last_analyze(console_db):
    """A table grown 250-fold since its last ANALYZE (autovacuum lags a fast stream): the queue's
    sample percentage follows the rows there are, not the stale count, so it stays a sample."""
    now = datetime.now(UTC)
    with console_db.engine.begin() as c:
        c.execute(text("ANALYZE predictions"))
        assert queries.estimated_predictions(c) == 20
        c.execute(PredictionRow.__table__.insert(), [prediction(i, 0.9, "tweets", now) for i in range(100, 5100)])
        estimate = queries.estimated_predictions(c)
    # 5,020 rows, counted at the analyzed page's density: 20 rows on one part-filled page, so low
    # (~2,900), never the stale 20.
    assert 2_000 <= estimate <= 10_000
    assert queries.sample_percent(estimate) <= 20.0


def test_skip_moves_on_and_undo_deletes_only_the_users_last_label(as_user, console_db):
    c, other = as_user("labeller"), as_user("curator")
    first, second, third = console_db.seeded.by_margin[:3]
    token = csrf(other, "/label")
    other.post("/label", data={"message_id": first, "label": "negative", "csrf_token": token})
    token = csrf(c, "/label")
    c.post("/label", data={"message_id": first, "label": "positive", "csrf_token": token})
    c.post("/label/skip", data={"message_id": second, "csrf_token": token})
    assert shown(c.get("/label").text)[0] not in (first, second)
    c.post("/label", data={"message_id": third, "label": "negative", "csrf_token": token})
    r = c.post("/label/undo", data={"csrf_token": token}, follow_redirects=False)
    assert r.headers["location"] == "/label?undone=1"
    assert labels_of(console_db.engine, "labeller") == [(first, "positive", "console")]
    assert labels_of(console_db.engine, "curator") == [(first, "negative", "console")]


def test_a_corrected_label_replaces_the_users_earlier_one_as_a_new_row(as_user, console_db):
    c = as_user("labeller")
    mid = console_db.seeded.by_margin[0]
    token = csrf(c, "/label")
    c.post("/label", data={"message_id": mid, "label": "positive", "csrf_token": token})
    with console_db.engine.connect() as conn:
        before = conn.execute(text("SELECT id FROM labels WHERE labeled_by = 'labeller'")).scalar_one()
    c.post("/label", data={"message_id": mid, "label": "negative", "csrf_token": token})
    with console_db.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, label FROM labels WHERE labeled_by = 'labeller'")).all()
    assert len(rows) == 1 and rows[0].label == "negative" and rows[0].id > before


def test_an_unknown_label_or_message_is_refused(as_user):
    c = as_user("labeller")
    token = csrf(c, "/label")
    assert c.post("/label", data={"message_id": "m000", "label": "meh", "csrf_token": token}).status_code == 400
    assert c.post("/label", data={"message_id": "nope", "label": "positive", "csrf_token": token}).status_code == 404


def test_progress_counts_labels_since_the_active_watermark_toward_min_new_labels(as_user, console_db):
    c = as_user("labeller")
    token = csrf(c, "/label")
    for mid in console_db.seeded.by_margin[:2]:
        c.post("/label", data={"message_id": mid, "label": "positive", "csrf_token": token})
    page = c.get("/label").text
    assert 'id="progress-new">2<' in page and 'id="progress-needed">200<' in page
    # training.gold_labelers is empty by default: every labeller's labels feed the gold set.
    assert 'data-gold="1"' in page


def test_a_labeller_outside_gold_labelers_is_told_so(console_db):
    # A non-default training.gold_labelers: only "curator" feeds the gold set.
    settings = settings_for(console_db).model_copy(update={"training": TrainingSettings(gold_labelers=("curator",))})
    with TestClient(build_app(settings, console_db.engine)) as c:
        login(c, "labeller")
        assert 'data-gold="0"' in c.get("/label").text


def test_skips_are_kept_within_the_cookies_budget():
    skips: list[str] = []
    for i in range(200):
        skips = remember_skip(skips, f"{i:036d}")
    assert skips[-1] == f"{199:036d}" and sum(len(s) + 4 for s in skips) <= SKIP_BUDGET_CHARS
    assert remember_skip([], "x" * 2000) == []

"""Search by text, label, source, confidence range and time, and a label corrected from the results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from console import queries
from tests.console.conftest import csrf


def ids(page: str) -> set[str]:
    return {part.split('"', 1)[0] for part in page.split('<tr data-message-id="')[1:]}


def test_each_filter_narrows_the_results(as_user):
    c = as_user("viewer")
    assert ids(c.get("/search", params={"q": "COFFEE"}).text) == {"m001", "m004"}
    assert ids(c.get("/search", params={"q": "coffee", "source": "tweets"}).text) == {"m001", "m004"}
    assert ids(c.get("/search", params={"q": "coffee", "label": "negative"}).text) == {"m004"}
    assert ids(c.get("/search", params={"min_confidence": "0.69"}).text) == {"m019", "m018"}
    assert ids(c.get("/search", params={"max_confidence": "0.515"}).text) == {"m000"}
    assert ids(c.get("/search", params={"source": "reviews"}).text) == {f"m{i:03d}" for i in range(0, 20, 3)}
    assert "no such" not in c.get("/search").text and ids(c.get("/search").text) == set()


def test_time_range_and_like_wildcards(console_db):
    now = datetime.now(UTC)
    with console_db.engine.connect() as c:
        recent = queries.search(c, queries.SearchFilter(since=now - timedelta(minutes=2, seconds=30)))
        assert {r.message_id for r in recent} == {"m000", "m001", "m002"}
        older = queries.search(c, queries.SearchFilter(until=now - timedelta(minutes=17, seconds=30)))
        assert {r.message_id for r in older} == {"m018", "m019"}
        # % and _ are literal characters in the search text, not patterns.
        assert queries.search(c, queries.SearchFilter(text="%")) == []


def test_a_bad_number_is_a_400_not_an_error(as_user):
    assert as_user("viewer").get("/search", params={"min_confidence": "high"}).status_code == 400


def test_a_labeller_corrects_a_label_from_the_results(as_user, console_db):
    c = as_user("labeller")
    page = c.get("/search", params={"q": "coffee"}).text
    assert "correct-form" in page
    r = c.post("/label", data={"message_id": "m004", "label": "positive", "next": "/search",
                               "csrf_token": csrf(c, "/search")}, follow_redirects=False)
    assert r.headers["location"] == "/search"
    with console_db.engine.connect() as conn:
        row = conn.execute(text("SELECT label, labeled_by, origin FROM labels WHERE message_id = 'm004'")).one()
    assert tuple(row) == ("positive", "labeller", "console")
    assert "correct-form" not in as_user("viewer").get("/search", params={"q": "coffee"}).text

"""Adapters: versions with their gate decision and gold metrics, report plots behind the login,
promote and roll back with a confirmation, each with an audit row naming who did it."""

from __future__ import annotations

from sqlalchemy import text

from tests.console.conftest import csrf


def statuses(engine) -> dict[str, str]:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT version, status FROM adapters")).all())


def audit(engine) -> list[tuple]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(text("SELECT actor, action, target FROM console_audit ORDER BY id"))]


def test_the_list_and_a_version_show_status_metrics_lineage_and_plots(as_user):
    c = as_user("viewer")
    listing = c.get("/adapters").text
    assert 'data-version="v1" data-status="active"' in listing
    assert 'data-version="v2" data-status="candidate"' in listing
    assert "0.8800" in listing  # gold macro_f1, the default primary metric
    page = c.get("/adapters/v2").text
    assert 'id="adapter-status">candidate' in page and "parent v1" in page
    assert 'id="confusion"' in page and 'id="plot-confusion_matrix"' in page and "promote-link" not in page
    png = c.get("/adapters/v2/confusion_matrix.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert c.get("/adapters/v1/curves.png").status_code == 404
    assert c.get("/adapters/nope").status_code == 404


def test_plots_need_a_login(client):
    assert client.get("/adapters/v2/confusion_matrix.png").status_code == 401


def test_promote_needs_confirmation_and_is_audited(as_user, console_db):
    c = as_user("curator")
    assert 'id="confirm"' in c.get("/adapters/v2/promote").text
    token = csrf(c, "/adapters/v2/promote")
    assert c.post("/adapters/v2/promote", data={"csrf_token": token}).status_code == 400
    assert statuses(console_db.engine) == {"v1": "active", "v2": "candidate"}
    r = c.post("/adapters/v2/promote", data={"csrf_token": token, "confirm": "yes"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/adapters/v2"
    assert statuses(console_db.engine) == {"v1": "retired", "v2": "active"}
    assert audit(console_db.engine) == [("curator", "promote", "v2")]
    assert "curator" in c.get("/adapters/v2").text


def test_rollback_restores_the_retired_version_and_is_audited(as_user, console_db):
    c = as_user("admin")
    token = csrf(c, "/adapters")
    c.post("/adapters/v2/promote", data={"csrf_token": token, "confirm": "yes"})
    r = c.post("/adapters/rollback", data={"csrf_token": token, "confirm": "yes"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/adapters/v1"
    assert statuses(console_db.engine) == {"v1": "active", "v2": "rejected"}
    assert audit(console_db.engine) == [("admin", "promote", "v2"), ("admin", "rollback", "v1")]
    # Nothing retired is left: a second rollback is refused with the registry's reason.
    again = c.post("/adapters/rollback", data={"csrf_token": token, "confirm": "yes"})
    assert again.status_code == 409 and "no retired version" in again.text

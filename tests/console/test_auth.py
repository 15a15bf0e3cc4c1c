"""Access: logins, sessions, the login rate limit, CSRF on every form, roles."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from starlette.routing import Route

from console.app import build_app
from console.ratelimit import LoginLimiter
from tests.console.conftest import csrf, login, settings_for

PAGES = ["/", "/live/data", "/drift", "/label", "/adapters", "/adapters/v1", "/search", "/users"]


@pytest.mark.parametrize("path", PAGES)
def test_no_page_is_served_to_anonymous_users(client, path):
    html = client.get(path, headers={"Accept": "text/html"}, follow_redirects=False)
    assert html.status_code == 303 and html.headers["location"] == "/login"
    assert client.get(path, headers={"Accept": "application/json"}).status_code == 401


def test_login_sets_a_signed_http_only_same_site_cookie_and_logout_ends_it(client):
    r = login(client, "viewer")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/adapters").status_code == 200
    token = csrf(client, "/adapters")
    assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert client.get("/adapters", headers={"Accept": "text/html"}, follow_redirects=False).status_code == 303


def test_a_wrong_password_or_unknown_user_is_refused(client):
    assert login(client, "viewer", "not-the-password").status_code == 401
    assert login(client, "nobody", "whatever-password").status_code == 401
    assert client.get("/adapters", headers={"Accept": "application/json"}).status_code == 401


def test_failed_logins_past_the_limit_get_429_even_with_the_right_password(client, console_db):
    limit = settings_for(console_db).console.login_attempts_per_minute
    for _ in range(limit):
        assert login(client, "viewer", "wrong-password").status_code == 401
    assert login(client, "viewer", "wrong-password").status_code == 429
    assert login(client, "viewer").status_code == 429
    # Another user from the same address is not locked out.
    assert login(client, "labeller").status_code == 303


def test_the_limit_forgets_failures_older_than_a_minute():
    now = [0.0]
    limiter = LoginLimiter(2, clock=lambda: now[0])
    limiter.failed("u", "a")
    limiter.failed("u", "a")
    assert limiter.blocked("u", "a") and not limiter.blocked("u", "b")
    now[0] = 61.0
    assert not limiter.blocked("u", "a")


def post_routes(app) -> list[str]:
    paths = []
    for route in app.routes:
        if isinstance(route, Route) and "POST" in (route.methods or ()):
            paths.append(route.path.replace("{version}", "v2"))
    return paths


def test_every_post_without_or_with_a_wrong_csrf_token_is_403(console_db, as_user):
    admin = as_user("admin")
    paths = post_routes(build_app(settings_for(console_db), console_db.engine))
    assert {"/login", "/logout", "/label", "/label/skip", "/label/undo", "/adapters/v2/promote",
            "/adapters/rollback", "/users/add", "/users/remove"} <= set(paths)
    for path in paths:
        assert admin.post(path, data={}).status_code == 403, path
        assert admin.post(path, data={"csrf_token": "forged"}).status_code == 403, path


@pytest.mark.parametrize(("role", "path", "data"), [
    ("viewer", "/label", {"message_id": "m000", "label": "positive"}),
    ("viewer", "/label/undo", {}),
    ("labeller", "/adapters/v2/promote", {"confirm": "yes"}),
    ("labeller", "/adapters/rollback", {"confirm": "yes"}),
    ("curator", "/users/add", {"name": "x", "role": "viewer", "password": "long-enough"}),
])
def test_a_role_below_the_action_gets_403(as_user, role, path, data):
    c = as_user(role)
    token = csrf(c, "/adapters")
    assert c.post(path, data={**data, "csrf_token": token}).status_code == 403


def test_pages_need_their_role(as_user):
    assert as_user("viewer").get("/label").status_code == 403
    assert as_user("curator").get("/users").status_code == 403
    assert as_user("labeller").get("/label").status_code == 200
    assert as_user("admin").get("/users").status_code == 200


def test_a_removed_user_is_logged_out_at_once(as_user):
    viewer, admin = as_user("viewer"), as_user("admin")
    token = csrf(admin, "/users")
    assert admin.post("/users/remove", data={"name": "viewer", "csrf_token": token},
                      follow_redirects=False).status_code == 303
    assert viewer.get("/adapters", headers={"Accept": "application/json"}).status_code == 401


def test_pages_forbid_framing_and_leak_no_referrer(client):
    r = client.get("/login")
    assert r.headers["x-frame-options"] == "DENY" and r.headers["referrer-policy"] == "same-origin"


def test_an_admin_adds_and_removes_users_with_an_audit_row(as_user, console_db):
    admin = as_user("admin")
    token = csrf(admin, "/users")
    r = admin.post("/users/add", data={"name": "newbie", "role": "labeller", "password": "long-enough-1",
                                       "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and 'data-user="newbie"' in admin.get("/users").text
    assert admin.post("/users/add", data={"name": "x", "role": "viewer", "password": "short",
                                          "csrf_token": token}).status_code == 400
    assert admin.post("/users/remove", data={"name": "admin", "csrf_token": token}).status_code == 400
    admin.post("/users/remove", data={"name": "newbie", "csrf_token": token})
    with console_db.engine.connect() as c:
        rows = c.execute(text("SELECT actor, action, target FROM console_audit ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("admin", "user_add", "newbie"), ("admin", "user_remove", "newbie")]

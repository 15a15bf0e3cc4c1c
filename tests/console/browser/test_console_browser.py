"""The analyst console in headless Chromium, as its users work it: one labelling session on one console
(the real ``sentistream console`` subprocess at its default settings but the port) over a database of
real SST-2 sentences. Log in, label 30 with the keyboard, undo one, refit with ``sentistream train
--once``, find the new adapter with its metrics and confusion matrix; a viewer's and a forged form's
requests are refused. Each page's screenshot goes to docs/console/ for docs/console.md.

The tests run in file order and build on each other: the labels of one are the next one's data.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from console.roles import ROLE_NAMES
from daemon.tansu_broker import free_port
from schemas.db import make_engine
from tests.cli.runner import COMMAND, clean_env, sentistream
from tests.conftest import DATA_DIR, PG_ADMIN_URL
from tests.console.browser.seed import IMPORTED, SOURCES, Seeded, seed
from tests.console.factories import password, seed_users, wait_until_up

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Where the pages' screenshots go: docs/console when `make screenshots` asks, else a temporary folder,
# so a test run leaves the checkout as it was.
SHOTS_ENV = "SENTISTREAM_SCREENSHOTS_DIR"
# The screenshots' size: docs/console.md shows them as the pages look on a laptop.
VIEWPORT = {"width": 1280, "height": 800}
LABELLED = 30
# Non-default: one session writes 29 labels and the earlier import 120, fewer than the 200 a
# production refit waits for.
MIN_NEW_LABELS = 100


@dataclass(frozen=True)
class Console:
    url: str
    engine: Engine
    seeded: Seeded
    env: dict[str, str]  # the console's settings, which the CLI commands beside it share
    cwd: Path


def cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    """One real CLI command; its stdout."""
    proc = sentistream(*args, env=env, cwd=cwd)
    assert proc.returncode == 0, (args, proc.stdout.decode()[-2000:], proc.stderr.decode()[-2000:])
    return proc.stdout.decode()


@pytest.fixture(scope="module")
def database(pg_admin) -> Iterator[str]:
    """An empty database for the whole module; dropped at its end."""
    name = f"sentistream_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with pg_admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def console(database, tmp_path_factory) -> Iterator[Console]:
    """The database as an operator sets it up through the CLI (``db upgrade``, which registers the shipped
    adapter; an earlier SST-2 labels import), the seeded predictions, one user per role, and
    ``sentistream console`` on a free port."""
    if not (DATA_DIR / "sst2" / "train.tsv").is_file():
        pytest.skip(f"SST-2 not found under {DATA_DIR} (set SENTISTREAM_DATA_DIR)")
    tmp = tmp_path_factory.mktemp("console-browser")
    port = free_port()
    # Absolute paths: the trainer writes the plots the console serves.
    env = clean_env(SENTISTREAM_DATABASE__URL=database, SENTISTREAM_CONSOLE__PORT=str(port), OMP_NUM_THREADS="1",
                    SENTISTREAM_TRAINING__REPORTS_DIR=str(tmp / "reports"),
                    SENTISTREAM_TRAINING__ADAPTERS_DIR=str(tmp / "adapters"))
    cli(env, tmp, "db", "upgrade")
    seeded = seed(database, DATA_DIR, tmp)
    cli(env, tmp, "labels", "import", str(seeded.labels_file))
    engine = make_engine(database)
    seed_users(engine)  # one per role, named after it; tests/console/test_cli.py runs `users add` itself
    log = tmp / "console.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*COMMAND, "console"], env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", proc, log)
        yield Console(f"http://127.0.0.1:{port}", engine, seeded, env, tmp)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        engine.dispose()


@pytest.fixture(scope="module")
def new_page(browser, console) -> Iterator[Callable]:
    """Factory: a page in a browser context of its own (its own cookies), at the console."""
    contexts = []

    def make():
        ctx = browser.new_context(viewport=VIEWPORT, base_url=console.url)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


def log_in(page, user: str, secret: str | None = None):
    page.goto("/login")
    page.fill("#username", user)
    page.fill("#password", secret or password(user))
    with page.expect_navigation():
        page.click("#login-submit")
    return page


@pytest.fixture(scope="module")
def as_user(new_page) -> Callable:
    """Factory: one logged-in page per user, kept for the module (the labeller's session goes on)."""
    pages = {}

    def get(user: str):
        if user not in pages:
            pages[user] = log_in(new_page(), user)
        return pages[user]

    return get


@pytest.fixture(scope="module")
def shot(tmp_path_factory) -> Callable[[object, str], None]:
    """Factory: ``shot(page, name)`` saves the page's screenshot as NAME.png."""
    folder = Path(os.environ.get(SHOTS_ENV) or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return lambda page, name: page.screenshot(path=folder / f"{name}.png")


def labels_by(engine: Engine, user: str) -> list[tuple[str, str, str]]:
    """(message_id, label, origin) of the user's labels, oldest first."""
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(text(
            "SELECT message_id, label, origin FROM labels WHERE labeled_by = :u ORDER BY id"), {"u": user})]


def token(page) -> str:
    """The session's CSRF token, from the logout form every page has."""
    return page.locator("#nav input[name=csrf_token]").get_attribute("value")


def test_login_refuses_a_wrong_password_and_lands_on_the_live_view(new_page, console, shot):
    page = new_page()
    page.goto("/")
    assert page.url == f"{console.url}/login"  # no anonymous access
    log_in(page, "labeller", "not-the-password")
    assert page.inner_text("#login-error") == "Wrong user name or password."
    page.fill("#username", "labeller")
    shot(page, "login")

    log_in(page, "labeller")
    assert page.url == f"{console.url}/"
    assert page.inner_text("#who") == "labeller (labeller)"
    # The charts are fed by the page's fetch(); the registry's active version arrives with them.
    page.wait_for_function("!['…', ''].includes(document.getElementById('updated').textContent)")
    assert not page.inner_text("#updated").startswith("refresh failed")
    assert page.inner_text("#active-version") == "minilm-sst2"
    assert page.inner_text("#consumer-lag") == "not reachable"  # no daemon_metrics_url by default
    assert page.evaluate("['chart-rate', 'chart-share', 'chart-confidence', 'chart-dead']"
                         ".every((id) => Chart.getChart(id).data.labels.length > 0)")
    shot(page, "live")


def test_labelling_30_with_the_keyboard_follows_the_queue_and_writes_labels(as_user, console, shot):
    page = as_user("labeller")
    page.goto("/label")
    assert page.inner_text("#progress-new") == str(IMPORTED)
    margins, seen, weighted = console.seeded.margins, [], []
    for i in range(LABELLED):
        message = page.locator("#message")
        mid = message.get_attribute("data-message-id")
        if message.get_attribute("data-reason") == "margin":  # else one of the random share
            weighted.append(margins[mid])
        truth = console.seeded.truth[mid]
        key = page.locator(f"#label-form button[value={truth}]").get_attribute("data-key")
        if i == LABELLED // 2:
            shot(page, "label")
        with page.expect_navigation():
            page.keyboard.press(key)
        seen.append(mid)
    assert len(set(seen)) == LABELLED  # never the same message twice
    # Unsure first: the weighted picks' margins average well below the seeded messages' (0.48 against
    # 0.66 expected; simulated, 2,000 runs of the draw never had them at or above it).
    assert statistics.fmean(weighted) < statistics.fmean(margins.values())
    assert page.locator("#message").get_attribute("data-message-id") not in seen
    assert page.inner_text("#progress-new") == str(IMPORTED + LABELLED)

    rows = labels_by(console.engine, "labeller")
    assert rows == [(mid, console.seeded.truth[mid], "console") for mid in seen]


def test_u_undoes_the_last_label(as_user, console):
    page = as_user("labeller")
    last = labels_by(console.engine, "labeller")[-1][0]
    with page.expect_navigation():
        page.keyboard.press("u")
    assert page.inner_text("#undo-status") == "Your last label was undone."
    rows = labels_by(console.engine, "labeller")
    assert len(rows) == LABELLED - 1 and last not in {r[0] for r in rows}
    assert page.inner_text("#progress-new") == str(IMPORTED + LABELLED - 1)


def refit(console: Console) -> dict:
    """``sentistream train --once`` on the labels so far, as cron runs it."""
    # One epoch (default: 3) keeps the refit quick, as in tests/cli/test_registry.py.
    out = cli(console.env, console.cwd, "train", "--once", "--set", "epochs=1", "--set",
              f"min_new_labels={MIN_NEW_LABELS}")
    return json.loads(out)


def registry_row(engine: Engine, version: str) -> dict:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT status, label_watermark FROM adapters WHERE version = :v"),
                              {"v": version}).mappings().one())


def test_refit_then_the_adapters_page_shows_the_new_version_and_a_curator_promotes_it(as_user, console, shot):
    out = refit(console)
    version = out["version"]
    with console.engine.connect() as c:
        newest = c.execute(text("SELECT max(id) FROM labels")).scalar_one()
    # From the base on ~150 labels, one epoch, the refit cannot beat the shipped SST-2 adapter on the gold
    # slice (measured: macro-F1 0.36-0.47 against 0.81-0.87): the gate refuses it and says why.
    assert out["action"] == "rejected", out
    assert registry_row(console.engine, version) == {"status": "rejected", "label_watermark": newest}

    page = as_user("curator")
    page.goto("/adapters")
    row = page.locator(f"#adapters-table tr[data-version='{version}']")
    assert row.get_attribute("data-status") == "rejected"
    assert f"{out['gold_macro_f1']:.4f}" in row.inner_text()
    shot(page, "adapters")

    with page.expect_navigation():
        row.locator("a", has_text=version).click()
    assert page.inner_text("#adapter-status") == "rejected"
    assert "does not beat active" in page.inner_text("#reasons")
    assert f"{out['gold_macro_f1']:.4f}" in page.inner_text("#gold-metrics")
    assert page.locator("#confusion th").all_inner_texts()[1:3] == ["negative", "positive"]
    page.wait_for_function("document.getElementById('plot-confusion_matrix').complete")
    assert page.locator("#plot-confusion_matrix").evaluate("img => img.naturalWidth") > 0
    shot(page, "adapter")

    # A curator overrides the gate, through the confirmation page; the audit says who.
    with page.expect_navigation():
        page.click("#promote-link")
    page.check("#confirm")
    with page.expect_navigation():
        page.click("#confirm-submit")
    assert page.inner_text("#adapter-status") == "active"
    assert registry_row(console.engine, version)["status"] == "active"
    with console.engine.connect() as c:
        audit = c.execute(text("SELECT actor, action FROM console_audit WHERE target = :v"), {"v": version}).all()
    assert [tuple(a) for a in audit] == [("curator", "promote")]
    assert "curator" in page.inner_text("#audit")


def test_a_viewer_can_neither_label_nor_promote(as_user, console):
    page = as_user("viewer")
    assert page.goto("/label").status == 403
    page.goto("/adapters")
    with console.engine.connect() as c:
        retired = c.execute(text("SELECT version FROM adapters WHERE status <> 'active' LIMIT 1")).scalar_one()
        active = c.execute(text("SELECT version FROM adapters WHERE status = 'active'")).scalar_one()
    csrf = token(page)
    posts = {"/label": {"message_id": next(iter(console.seeded.truth)), "label": "positive"},
             "/label/undo": {}, f"/adapters/{retired}/promote": {"confirm": "yes"},
             "/adapters/rollback": {"confirm": "yes"}}
    for path, form in posts.items():
        # The viewer's own session and a valid token: only the role is missing.
        answer = page.request.post(path, form={"csrf_token": csrf, **form}, max_redirects=0)
        assert answer.status == 403, (path, answer.status)
        assert "your role (viewer) may not do this" in answer.text()
    assert labels_by(console.engine, "viewer") == []
    with console.engine.connect() as c:
        assert c.execute(text("SELECT version FROM adapters WHERE status = 'active'")).scalar_one() == active


def test_a_form_without_the_csrf_token_is_refused(as_user, console):
    page = as_user("labeller")
    page.goto("/label")
    mid = page.locator("#message").get_attribute("data-message-id")
    form = {"message_id": mid, "label": console.seeded.truth[mid]}
    before = labels_by(console.engine, "labeller")
    for sent in ({}, {"csrf_token": "forged"}):
        answer = page.request.post("/label", form={**sent, **form}, max_redirects=0)
        assert answer.status == 403, (sent, answer.status)
    assert labels_by(console.engine, "labeller") == before
    # The same post with the page's token is taken: the token alone made the difference.
    answer = page.request.post("/label", form={"csrf_token": token(page), **form}, max_redirects=0)
    assert answer.status == 303
    assert labels_by(console.engine, "labeller") == [*before, (mid, form["label"], "console")]


def test_search_finds_messages_by_text_and_label(as_user, console, shot):
    page = as_user("labeller")
    page.goto("/search")
    page.fill("#q", "Movie")
    page.select_option("#search-label", "positive")
    with page.expect_navigation():
        page.click("#search-submit")
    seeded = console.seeded
    expected = {m for m, t in seeded.texts.items() if "movie" in t.lower() and seeded.predicted[m] == "positive"}
    rows = page.locator("#results tbody tr")
    assert {rows.nth(i).get_attribute("data-message-id") for i in range(rows.count())} == expected
    assert page.inner_text("#result-count").startswith(f"{len(expected)} results")
    shot(page, "search")


def test_drift_compares_each_source_with_the_active_adapters_training_labels(as_user, console, shot):
    page = as_user("viewer")
    page.goto("/drift")
    rows = page.locator("#drift-table tbody tr")
    counts = {rows.nth(i).get_attribute("data-source"): int(rows.nth(i).locator("td").nth(1).inner_text())
              for i in range(rows.count())}
    # The seed spread its messages evenly over the sources, all within the default 60-minute window.
    assert counts == {source: len(console.seeded.truth) // len(SOURCES) for source in SOURCES}
    assert "Training shares of" in page.inner_text("main")  # the refit recorded its label counts
    shot(page, "drift")


def test_an_admin_sees_every_user(as_user, console, shot):
    page = as_user("admin")
    page.goto("/users")
    rows = page.locator("#users-table tr")
    assert sorted(rows.nth(i).get_attribute("data-user") for i in range(rows.count())) == sorted(ROLE_NAMES)
    shot(page, "users")

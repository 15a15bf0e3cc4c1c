"""The real CLI: ``sentistream users`` and ``sentistream console`` as subprocesses."""

from __future__ import annotations

import signal
import socket

import httpx

from daemon.tansu_broker import free_port
from tests.cli.runner import clean_env, sentistream
from tests.console.factories import CSRF, password

NO_USERS = "sentistream: error: no console users: run 'sentistream users add NAME --role admin'"


def one_line(proc) -> str:
    err = proc.stderr.decode().strip()
    assert "\n" not in err, err
    return err


def test_users_add_list_remove(database_url):
    env = clean_env(SENTISTREAM_DATABASE__URL=database_url)
    add = sentistream("users", "add", "ann", "--role", "curator", "--password-stdin", env=env,
                      stdin=b"a-long-password\n")
    assert add.returncode == 0 and add.stdout.decode().strip() == "added ann (curator)"
    assert sentistream("users", "list", env=env).stdout.decode() == "ann\tcurator\n"
    again = sentistream("users", "add", "ann", "--role", "viewer", "--password-stdin", env=env, stdin=b"another-one\n")
    assert again.returncode == 2 and "exists" in one_line(again)
    short = sentistream("users", "add", "bob", "--role", "viewer", "--password-stdin", env=env, stdin=b"short\n")
    assert short.returncode == 2 and "at least 8 characters" in one_line(short)
    assert sentistream("users", "remove", "ann", env=env).returncode == 0
    gone = sentistream("users", "remove", "ann", env=env)
    assert gone.returncode == 2 and "no user 'ann'" in one_line(gone)


def test_console_with_no_users_exits_2_in_one_line(database_url):
    proc = sentistream("console", env=clean_env(SENTISTREAM_DATABASE__URL=database_url,
                                                SENTISTREAM_CONSOLE__PORT=str(free_port())))
    assert proc.returncode == 2 and one_line(proc) == NO_USERS


def test_console_with_the_database_down_or_not_migrated_exits_2_in_one_line(make_database):
    port = str(free_port())
    down = sentistream("console", env=clean_env(
        SENTISTREAM_DATABASE__URL=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x",
        SENTISTREAM_CONSOLE__PORT=port))
    assert down.returncode == 2 and "cannot reach the database" in one_line(down)
    bare = sentistream("console", env=clean_env(SENTISTREAM_DATABASE__URL=make_database(migrate=False),
                                                SENTISTREAM_CONSOLE__PORT=port))
    assert bare.returncode == 2 and "run 'sentistream db upgrade'" in one_line(bare)


def test_console_on_a_taken_port_exits_2_in_one_line(console_db):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = sentistream("console", env=clean_env(SENTISTREAM_DATABASE__URL=console_db.url,
                                                    SENTISTREAM_CONSOLE__PORT=str(port)))
    assert proc.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in one_line(proc)


def test_the_served_console_logs_paths_never_query_strings_or_text(console_server):
    with httpx.Client(base_url=console_server.url) as c:
        token = CSRF.search(c.get("/login").text).group(1)
        r = c.post("/login", data={"username": "viewer", "password": password("viewer"), "csrf_token": token},
                   follow_redirects=True)
        assert r.status_code == 200 and 'id="who">viewer' in r.text
        found = c.get("/search", params={"q": "coffee was great"})
        assert "the coffee was great" in found.text
        assert c.get("/static/vendor/chart.umd.min.js").status_code == 200
    log = console_server.log.read_text()
    assert '"path": "/search"' in log and '"status": 200' in log
    assert "coffee" not in log and "q=" not in log and "?" not in log
    # No secret key set (the default): the one warning that sessions end at restart.
    assert "console.random_secret_key" in log


def test_sigterm_stops_the_console_with_exit_0(console_server):
    console_server.proc.send_signal(signal.SIGTERM)
    assert console_server.proc.wait(timeout=30) == 0
    log = console_server.log.read_text()
    assert '"event": "console.stopped"' in log and '"signal": "SIGTERM"' in log
    assert "Traceback" not in log

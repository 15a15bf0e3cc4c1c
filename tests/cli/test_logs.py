"""Every command honours observability.log_format: with ``json`` every line it writes to stderr is a
JSON object (library loggers, warnings and progress bars included); ``console`` stays readable."""

from __future__ import annotations

import io
import logging
import signal
import warnings

import pytest
import structlog

from schemas.logs import configure_logging
from schemas.settings import ObservabilitySettings
from tests.cli.runner import clean_env, json_lines, sentistream
from tests.daemon.harness import count, default_env, log_of, make_topics, produce, start, tweet, wait_for

# The setting under test; the default (auto) gives JSON only when stderr is not a terminal.
JSON = {"SENTISTREAM_OBSERVABILITY__LOG_FORMAT": "json"}


def events(stderr: bytes) -> set[str]:
    rows = json_lines(stderr)
    assert all({"event", "level", "timestamp"} <= r.keys() for r in rows), rows
    return {r["event"] for r in rows}


@pytest.fixture
def sqlite_env(tmp_path) -> dict[str, str]:
    # SQLite: the file-based database a new user starts with (the default URL needs a server).
    env = clean_env(SENTISTREAM_DATABASE__URL=f"sqlite:///{tmp_path / 'x.db'}", **JSON)
    proc = sentistream("db", "upgrade", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b"" or events(proc.stderr)
    return env


def test_classify(tmp_path):
    proc = sentistream("classify", "a lovely little film", "a dull mess", env=clean_env(**JSON), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert len(json_lines(proc.stdout)) == 2
    assert "model_loaded" in events(proc.stderr)


def test_labels_import(tmp_path, sqlite_env):
    f = tmp_path / "labels.tsv"
    f.write_text("text\tlabel\nnice\tpositive\nugh\tangry\n")
    proc = sentistream("labels", "import", str(f), env=sqlite_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json_lines(proc.stdout) == [{"file": str(f), "written": 1, "rejected": 1}]
    rows = json_lines(proc.stderr)
    rejected = [r for r in rows if r["event"] == "label_rejected"]
    assert [(r["line"], r["level"]) for r in rejected] == [(3, "warning")]
    assert "unknown label 'angry'" in rejected[0]["reason"]


def test_labels_import_console_is_readable(tmp_path, sqlite_env):
    f = tmp_path / "labels.tsv"
    f.write_text("text\tlabel\nugh\tangry\n")
    env = {**sqlite_env, "SENTISTREAM_OBSERVABILITY__LOG_FORMAT": "console"}
    proc = sentistream("labels", "import", str(f), env=env, cwd=tmp_path)
    assert proc.returncode == 1  # nothing written
    err = proc.stderr.decode()
    assert "label_rejected" in err and "line=2" in err
    assert not err.lstrip().startswith("{") and "\x1b[" not in err  # no JSON, no colours off a terminal


def test_train_from_file(tmp_path, tiny_bert_dir):
    rows = ["sentence\tlabel"] + [f"{w} movie {i}\t{lab}" for i in range(30) for w, lab in (("great", 1), ("awful", 0))]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    # A tiny model and one epoch of the head only keep the run to seconds; the logging is the same.
    # val_fraction: the default 5% of 60 rows may hash to no validation row at all.
    proc = sentistream("train", "--train-file", str(tmp_path / "train.tsv"), "--out", str(tmp_path / "out"),
                       "--set", f"base_model={tiny_bert_dir}", "--set", "method=head", "--set", "epochs=1",
                       "--set", "val_fraction=0.2",
                       env=clean_env(**JSON), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert {"fit.start", "fit.done"} <= events(proc.stderr)


@pytest.mark.kafka
def test_run(broker, topic_names, database_url):
    topics = make_topics(broker, topic_names)
    produce(broker, topics["input"], [tweet(i) for i in range(20)] + [(b"bad", b"\xff")])
    # Port 0: the default 9108 may be taken by another daemon on the machine.
    proc = start(default_env(broker, database_url, topics, SENTISTREAM_OBSERVABILITY__HTTP_PORT="0", **JSON))
    assert wait_for(lambda: count(database_url, "select count(*) from dead_letters") == 1
                    and count(database_url, "select count(*) from predictions") == 20 or proc.poll() is not None,
                    timeout=120), log_of(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, log_of(proc)
    log = log_of(proc, tail=None)
    assert "Traceback" not in log
    assert {"model_loaded", "daemon_started", "daemon_stopped"} <= events(log.encode())


def test_demo(tmp_path):
    proc = sentistream("demo", "--messages", "20", env=clean_env(**JSON), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert "=== sentistream demo summary ===" in proc.stdout.decode()
    assert {"model_loaded", "daemon_started", "daemon_stopped"} <= events(proc.stderr)


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        yield
        logging.captureWarnings(False)
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_library_loggers_and_warnings_share_the_format(restore_logging):
    stream = io.StringIO()
    configure_logging(ObservabilitySettings(log_format="json"), stream)
    structlog.get_logger("daemon.app").info("ours", n=1)
    structlog.get_logger("daemon.app").debug("below the level")
    logging.getLogger("kafka.conn").info("below warning: libraries are quieter")
    logging.getLogger("kafka.net").error("broker %s unreachable", "h:9092")
    warnings.warn("a library warning", UserWarning)
    rows = json_lines(stream.getvalue())
    assert [(r["event"], r["level"]) for r in rows][:2] == [("ours", "info"), ("broker h:9092 unreachable", "error")]
    assert rows[1]["logger"] == "kafka.net"
    assert rows[2]["logger"] == "py.warnings" and "UserWarning: a library warning" in rows[2]["event"]
    assert len(rows) == 3


def test_console_tracebacks_show_no_local_variables(restore_logging):
    stream = io.StringIO()
    configure_logging(ObservabilitySettings(log_format="console"), stream)
    message_text = "a customer's private complaint"
    try:
        raise ValueError("bad batch")
    except ValueError:
        structlog.get_logger("daemon.worker").exception("batch_failed")
    out = stream.getvalue()
    assert "batch_failed" in out and "ValueError: bad batch" in out
    assert message_text not in out

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from schemas.errors import ConfigError
from schemas.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for k in list(os.environ):
        if k.startswith("SENTISTREAM_"):
            monkeypatch.delenv(k)


def test_defaults_are_valid_and_frozen():
    s = load_settings()
    assert s.batch.max_size > 0
    with pytest.raises(Exception):
        s.batch = None  # frozen


def test_env_nested_values(monkeypatch):
    monkeypatch.setenv("SENTISTREAM_BATCH__MAX_SIZE", "17")
    monkeypatch.setenv("SENTISTREAM_KAFKA__INPUT_TOPICS", '["a", "b"]')
    s = load_settings()
    assert s.batch.max_size == 17 and s.kafka.input_topics == ("a", "b")


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"SENTISTREAM_BATCH__MAX_SIZE": "-1"}, "batch.max_size (SENTISTREAM_BATCH__MAX_SIZE)"),
        ({"SENTISTREAM_MODEL__PATH": "/no/such/model"}, "model.path (SENTISTREAM_MODEL__PATH): directory '/no/such/model' does not exist"),
        ({"SENTISTREAM_KAFKA__DELIVERY": "maybe"}, "kafka.delivery (SENTISTREAM_KAFKA__DELIVERY)"),
        ({"SENTISTREAM_DATABASE__URL": "not a url"}, "database.url"),
        ({"SENTISTREAM_MODEL__TRUST_REMOTE_CODE": "true"}, "model.trust_remote_code"),
        ({"SENTISTREAM_BATCH__MAX_SZE": "3"}, "batch.max_sze"),
        ({"SENTISTREAM_KAFKA__FETCH_MAX_WAIT_MS": "30000"},
         "fetch_max_wait_ms (30000) must be below request_timeout_ms"),
    ],
)
def test_bad_setting_names_the_setting(monkeypatch, env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert expected in str(e.value)


def test_yaml_file_and_env_precedence(monkeypatch, tmp_path):
    cfg = tmp_path / "sentistream.yaml"
    cfg.write_text("batch:\n  max_size: 9\n  max_wait_ms: 7\n")
    monkeypatch.setenv("SENTISTREAM_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("SENTISTREAM_BATCH__MAX_WAIT_MS", "3")
    s = load_settings()
    assert (s.batch.max_size, s.batch.max_wait_ms) == (9, 3)


def test_missing_config_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SENTISTREAM_CONFIG_FILE", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="SENTISTREAM_CONFIG_FILE.*file not found"):
        load_settings()


def test_secrets_hidden_in_repr_and_logs(monkeypatch, caplog):
    monkeypatch.setenv("SENTISTREAM_DATABASE__URL", "postgresql+psycopg://app:hunter2secret@db/x")
    monkeypatch.setenv("SENTISTREAM_KAFKA__SASL_PASSWORD", "kafkasecret42")
    s = load_settings()
    text = repr(s) + str(s) + s.model_dump_json() + s.database.safe_url
    assert "hunter2secret" not in text and "kafkasecret42" not in text
    assert s.database.url.get_secret_value().endswith("hunter2secret@db/x")


def test_cli_start_fails_naming_the_setting():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTISTREAM_")}
    env["SENTISTREAM_BATCH__MAX_SIZE"] = "0"
    env["SENTISTREAM_MODEL__PATH"] = "/no/such/model"
    r = subprocess.run([sys.executable, "-m", "schemas.cli", "run"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert "batch.max_size (SENTISTREAM_BATCH__MAX_SIZE)" in r.stderr
    assert "model.path (SENTISTREAM_MODEL__PATH)" in r.stderr
    assert "Traceback" not in r.stderr

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.errors import ConfigError
from schemas.settings import DatabaseSettings, Settings, load_settings, unknown_env_warnings
from schemas.settings_input import _is_scalar_list, setting_paths

REPO = Path(__file__).resolve().parents[2]


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


def test_an_empty_data_dir_variable_means_no_data_dir(monkeypatch):
    # The Makefile exports SENTISTREAM_DATA_DIR; set empty, the demo must use its bundled sample.
    monkeypatch.setenv("SENTISTREAM_DATA_DIR", "")
    assert load_settings().data_dir is None
    monkeypatch.setenv("SENTISTREAM_DATA_DIR", "/data")
    assert load_settings().data_dir == Path("/data")


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"SENTISTREAM_BATCH__MAX_SIZE": "-1"}, "batch.max_size (SENTISTREAM_BATCH__MAX_SIZE)"),
        ({"SENTISTREAM_MODEL__PATH": "/no/such/model"}, "model.path (SENTISTREAM_MODEL__PATH): directory '/no/such/model' does not exist"),
        ({"SENTISTREAM_KAFKA__DELIVERY": "maybe"}, "kafka.delivery (SENTISTREAM_KAFKA__DELIVERY)"),
        ({"SENTISTREAM_TRAINING__PRIMARY_METRIC": "f1"}, "training.primary_metric (SENTISTREAM_TRAINING__PRIMARY_METRIC): Input should be 'macro_f1'"),
        ({"SENTISTREAM_DATABASE__URL": "not a url"}, "database.url"),
        ({"SENTISTREAM_MODEL__TRUST_REMOTE_CODE": "true"}, "model.trust_remote_code"),
        ({"SENTISTREAM_BATCH__MAX_SZE": "3"},
         "batch.max_sze (SENTISTREAM_BATCH__MAX_SZE): no such setting; did you mean SENTISTREAM_BATCH__MAX_SIZE?"),
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


# Lists from the environment: comma-separated or JSON.

def _scalar_list_settings() -> list[tuple[str, ...]]:
    return [p for p in setting_paths(Settings) if len(p) == 2
            and _is_scalar_list(getattr(Settings.model_fields[p[0]].annotation, "model_fields")[p[1]].annotation)]


def test_every_list_setting_takes_a_comma_separated_list(monkeypatch):
    paths = _scalar_list_settings()
    assert ("kafka", "input_topics") in paths and ("model", "labels") in paths and ("training", "class_weights") in paths
    expected = {}
    for section, name in paths:
        numbers = section == "training" and name == "class_weights"  # the one list of numbers
        value, parsed = ("0.25, 0.75", (0.25, 0.75)) if numbers else ("first, second", ("first", "second"))
        monkeypatch.setenv(f"SENTISTREAM_{section.upper()}__{name.upper()}", value)
        expected[section, name] = parsed
    s = load_settings()
    assert {p: getattr(getattr(s, p[0]), p[1]) for p in paths} == expected


def test_list_settings_still_take_json_and_their_plain_values(monkeypatch):
    monkeypatch.setenv("SENTISTREAM_KAFKA__INPUT_TOPICS", '["tweets", "reviews"]')
    monkeypatch.setenv("SENTISTREAM_MODEL__LABELS", "negative")  # one item, no comma
    # Not the defaults: plain values that are no list must stay what they are.
    monkeypatch.setenv("SENTISTREAM_TRAINING__CLASS_WEIGHTS", "none")
    monkeypatch.setenv("SENTISTREAM_TRAINING__TARGET_MODULES", "all-linear")
    s = load_settings()
    assert s.kafka.input_topics == ("tweets", "reviews") and s.model.labels == ("negative",)
    assert s.training.class_weights == "none" and s.training.target_modules == "all-linear"


def test_a_section_or_list_of_objects_that_is_not_json_names_the_variable(monkeypatch):
    monkeypatch.setenv("SENTISTREAM_KAFKA", "{bad")
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert str(e.value).startswith("invalid setting kafka (SENTISTREAM_KAFKA): not valid JSON: Expecting property name")
    assert "\n" not in str(e.value)


# The config file: syntax errors with file:line:column, values under their file key.

@pytest.mark.parametrize("name, text, where, problem", [
    ("broken.yaml", "batch:\n  max_size: [1\n", ":3:1: invalid YAML: ", "expected ',' or ']'"),
    ("tab.yml", "batch:\n\tmax_size: 1\n", ":2:1: invalid YAML: ", "found character '\\t'"),
    ("broken.toml", "[batch]\nmax_size = \n", ":2:12: invalid TOML: ", "Invalid value"),
    ("list.yaml", "- kafka\n", ": expected setting sections", "found a list"),
])
def test_broken_config_file_is_one_line_with_its_position(monkeypatch, tmp_path, name, text, where, problem):
    cfg = tmp_path / name
    cfg.write_text(text)
    monkeypatch.setenv("SENTISTREAM_CONFIG_FILE", str(cfg))
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert str(e.value).startswith(f"{cfg}{where}") and problem in str(e.value) and "\n" not in str(e.value)


def test_bad_value_is_reported_where_it_was_set(monkeypatch, tmp_path):
    cfg = tmp_path / "sentistream.yaml"
    cfg.write_text("kafka:\n  max_poll_records: 0\n  max_pol_records: 3\nbatch:\n  max_size: 0\n")
    monkeypatch.setenv("SENTISTREAM_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("SENTISTREAM_BATCH__MAX_SIZE", "-1")  # the variable overrides the file's value
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert str(e.value).splitlines() == [
        f"invalid setting kafka.max_poll_records in {cfg}: Input should be greater than 0",
        f"  kafka.max_pol_records in {cfg}: no such setting; did you mean kafka.max_poll_records?",
        "  batch.max_size (SENTISTREAM_BATCH__MAX_SIZE): Input should be greater than 0",
    ]


def test_a_check_across_settings_names_every_place_involved(monkeypatch, tmp_path):
    cfg = tmp_path / "sentistream.toml"
    cfg.write_text("[kafka]\nfetch_max_wait_ms = 20000\n")
    monkeypatch.setenv("SENTISTREAM_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("SENTISTREAM_KAFKA__REQUEST_TIMEOUT_MS", "10000")
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert str(e.value) == (f"invalid setting kafka (SENTISTREAM_KAFKA__REQUEST_TIMEOUT_MS, in {cfg}): fetch_max_wait_ms "
                            "(20000) must be below request_timeout_ms (10000): a held fetch would time out")


def test_unknown_top_level_key_in_the_file_suggests_the_section(monkeypatch, tmp_path):
    cfg = tmp_path / "sentistream.yaml"
    cfg.write_text("databse:\n  pool_size: 3\n")
    monkeypatch.setenv("SENTISTREAM_CONFIG_FILE", str(cfg))
    with pytest.raises(ConfigError, match=re.escape(f"databse in {cfg}: no such setting; did you mean database?")):
        load_settings()


# Database URLs: the installed driver for Postgres, a clear message for anything else, never the URL.

@pytest.mark.parametrize("url, expected", [
    ("postgres://app:p%40ss@db:5432/x", "postgresql+psycopg://app:p%40ss@db:5432/x"),
    ("postgresql://app@db/x?sslmode=require", "postgresql+psycopg://app@db/x?sslmode=require"),
    ("postgres+psycopg://db/x", "postgresql+psycopg://db/x"),
    ("postgresql+psycopg://db/x", "postgresql+psycopg://db/x"),
    ("sqlite:///demo.db", "sqlite:///demo.db"),
])
def test_postgres_urls_get_the_psycopg_driver(url, expected):
    assert DatabaseSettings(url=url).url.get_secret_value() == expected


@pytest.mark.parametrize("url, problem", [
    ("mysql://app:hunter2secret@db/x", "unsupported database 'mysql'"),
    ("postgresql+psycopg2://app:hunter2secret@db/x", "unknown or missing database driver 'postgresql+psycopg2'"),
    ("postgresql+nosuch://app:hunter2secret@db/x", "unknown or missing database driver 'postgresql+nosuch'"),
    ("app:hunter2secret@db", "not a database URL"),
])
def test_unusable_database_url_is_named_without_the_password(monkeypatch, url, problem):
    monkeypatch.setenv("SENTISTREAM_DATABASE__URL", url)
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert str(e.value).startswith(f"invalid setting database.url (SENTISTREAM_DATABASE__URL): {problem}")
    assert "hunter2secret" not in str(e.value)


# Misspelt variables: pydantic-settings ignores them, so they are named in a warning.

@pytest.mark.parametrize("var, meant", [
    ("SENTISTREAM_DATABASE_URL", "SENTISTREAM_DATABASE__URL"),
    ("SENTISTREAM_KAFKA_BOOTSTRAP_SERVERS", "SENTISTREAM_KAFKA__BOOTSTRAP_SERVERS"),
    ("SENTISTREAM_LOG_LEVEL", "SENTISTREAM_OBSERVABILITY__LOG_LEVEL"),
    ("SENTISTREAM_SHUTDOWN_TIMEOUT", "SENTISTREAM_SHUTDOWN_TIMEOUT_S"),
    ("SENTISTREAM_CONFIG_FLE", "SENTISTREAM_CONFIG_FILE"),
    ("sentistream_modle__preset", "SENTISTREAM_MODEL__PRESET"),
    ("SENTISTREAM_DEVICE", "SENTISTREAM_MODEL__DEVICE or SENTISTREAM_TRAINING__DEVICE"),
])
def test_misspelt_variable_is_named_with_the_setting_meant(var, meant):
    assert unknown_env_warnings({var: "x", "PATH": "/bin"}) == [
        f"{var} is not a setting and is ignored; did you mean {meant}?"]


def test_settings_and_unrelated_variables_give_no_warning():
    # Nested unknowns (SENTISTREAM_BATCH__MAX_SZE) fail validation instead, naming the setting meant.
    env = {"SENTISTREAM_DATABASE__URL": "x", "SENTISTREAM_KAFKA": "{}", "sentistream_batch__max_size": "3",
           "SENTISTREAM_BATCH__MAX_SZE": "3", "SENTISTREAM_SOMETHING_ELSE_ENTIRELY": "x", "DATABASE_URL": "x"}
    assert unknown_env_warnings(env) == []


def test_variables_the_project_uses_give_no_warning():
    """Every SENTISTREAM_* name in the deploy files, scripts, benchmarks and test helpers (test modules
    spell some wrong on purpose)."""
    skip = {".git", ".venv", "node_modules", "__pycache__"}
    files = [p for p in REPO.rglob("*") if p.is_file() and not skip & set(p.relative_to(REPO).parts)
             and not p.name.startswith("test_") and p.suffix in ("", ".py", ".yml", ".yaml", ".md", ".example", ".toml")]
    names = {m for f in files for m in re.findall(r"SENTISTREAM_[A-Z0-9_]*[A-Z0-9]", f.read_text(errors="ignore"))}
    assert {"SENTISTREAM_TEST_PG", "SENTISTREAM_CONFIG_FILE", "SENTISTREAM_DATA_DIR"} <= names
    assert unknown_env_warnings(dict.fromkeys(names, "x")) == []

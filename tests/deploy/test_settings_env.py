"""Every SENTISTREAM_* variable the stack sets is a real setting, and the values compose gives
the daemon make a valid Settings object."""

from __future__ import annotations

import os

import pytest

from schemas.settings import ENV_PREFIX, Settings
from tests.deploy.stack import DAEMONS, env_example, resolved_config, service_env, setting_env_names


@pytest.fixture(scope="module")
def config() -> dict:
    return resolved_config()


def test_setting_env_names_walks_nested_sections():
    names = setting_env_names()
    assert {"SENTISTREAM_KAFKA", "SENTISTREAM_KAFKA__BOOTSTRAP_SERVERS", "SENTISTREAM_OBSERVABILITY__HTTP_PORT",
            "SENTISTREAM_SHUTDOWN_TIMEOUT_S", "SENTISTREAM_CONFIG_FILE"} <= names
    assert "SENTISTREAM_KAFKA__NO_SUCH_FIELD" not in names


def test_every_sentistream_variable_in_compose_is_a_setting(config):
    known = setting_env_names()
    seen = set()
    for name, svc in config["services"].items():
        env = svc.get("environment") or {}
        for var in env:
            if var.startswith(ENV_PREFIX):
                seen.add(var)
                assert var in known, f"service {name} sets {var}, which is no field of schemas.settings.Settings"
    assert len(seen) > 10


def test_every_sentistream_variable_in_env_example_is_a_setting():
    documented = [v for v in env_example() if v.startswith(ENV_PREFIX)]
    assert documented
    unknown = sorted(set(documented) - setting_env_names())
    assert not unknown, f".env.example documents variables that are no settings: {unknown}"


@pytest.mark.parametrize("service", [*DAEMONS, "trainer", "trainer-cpu", "migrate", "console"])
def test_compose_environment_makes_valid_settings(config, service, monkeypatch):
    for var in list(os.environ):
        if var.startswith(ENV_PREFIX):
            monkeypatch.delenv(var)
    env = service_env(config["services"][service])
    for var, value in env.items():
        if var.startswith(ENV_PREFIX):
            monkeypatch.setenv(var, value)
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "kafka:19092"
    assert settings.database.safe_url == "postgresql+psycopg://sentistream:***@postgres:5432/sentistream"
    assert settings.observability.log_format == "json"
    if service in DAEMONS:
        assert settings.kafka.delivery == "transactional"
        assert settings.kafka.input_topics == ("sentistream.input",)
        assert settings.kafka.dead_letter_topic == "sentistream.dead-letters"


@pytest.mark.parametrize("var", sorted(v for v, value in env_example().items()
                                      if v.startswith(ENV_PREFIX) and value and not value.startswith("/")))
def test_env_example_setting_examples_are_valid_values(var, monkeypatch):
    """Each commented example in .env.example, uncommented, is accepted (paths aside: they must
    exist inside the container)."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv(var, env_example()[var])
    Settings()

"""Reading the deploy files the way their consumers do: docker-compose for the compose file,
pydantic-settings names for SENTISTREAM_* variables."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from schemas.settings import CONFIG_FILE_ENV, ENV_PREFIX, Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "sentistream.json"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"

# .env.example leaves these empty on purpose; compose refuses to start without them.
REQUIRED_SECRETS = {
    "POSTGRES_PASSWORD": "test-postgres-pw",
    "GRAFANA_DB_PASSWORD": "test-reader-pw",
    "GRAFANA_ADMIN_PASSWORD": "test-admin-pw",
    "CONSOLE_SECRET_KEY": "test-console-key",
}
PROFILES = ("gpu", "cpu", "demo")
# Long-running daemon flavours; each profile runs one of them.
DAEMONS = ("daemon", "daemon-cpu")


def compose(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run docker-compose against the repository's compose file with .env.example as its .env.

    The environment is minimal so the developer's shell (SENTISTREAM_*, INPUT_TOPIC, ...) cannot
    change what is validated."""
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not installed; run 'make compose-tool' (apt-get install docker-compose)")
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    proc = subprocess.run(
        [exe, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), *args],
        env=base | (REQUIRED_SECRETS if env is None else env), capture_output=True, text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"docker-compose {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def resolved_config(*profile_args: str, env: dict[str, str] | None = None) -> dict:
    return yaml.safe_load(compose(*profile_args, "config", env=env).stdout)


def active_services(config: dict, profiles: set[str]) -> set[str]:
    """Services compose starts with these profiles: those without profiles, and matching ones."""
    return {name for name, svc in config["services"].items()
            if not svc.get("profiles") or profiles & set(svc["profiles"])}


def service_env(svc: dict) -> dict[str, str]:
    """A service's environment as the container gets it (passthrough variables left unset are absent)."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: str(v) for k, v in env.items() if v is not None}


def env_example() -> dict[str, str | None]:
    """Every variable .env.example documents: set ones with their value, commented-out examples as None
    unless they carry a value."""
    out: dict[str, str | None] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if m:
            out[m.group(2)] = m.group(3)
    return out


def setting_env_names(model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> set[str]:
    """Every environment variable pydantic-settings maps onto a field of ``Settings``: one per field,
    sections both as a whole (JSON) and field by field (``__``-nested)."""
    names = {CONFIG_FILE_ENV} if model is Settings else set()
    for name, field in model.model_fields.items():
        env = prefix + name.upper()
        names.add(env)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            names |= setting_env_names(field.annotation, env + "__")
    return names

"""Grafana and Postgres provisioning files agree with the compose file that mounts them."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from tests.deploy.stack import DASHBOARD, DEPLOY, resolved_config, service_env

GRAFANA = DEPLOY / "grafana" / "provisioning"


@pytest.fixture(scope="module")
def config() -> dict:
    return resolved_config()


def _mounts(svc: dict) -> dict[str, str]:
    return {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}


def test_dashboard_uses_only_provisioned_datasources():
    sources = yaml.safe_load((GRAFANA / "datasources" / "datasources.yml").read_text())["datasources"]
    provisioned = {d["uid"]: d["type"] for d in sources}
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        for ref in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
            assert provisioned.get(ref["uid"]) == ref["type"], f"panel {panel['title']!r} uses {ref}"
    kinds = {provisioned[p["datasource"]["uid"]] for p in dash["panels"] if p["type"] != "row"}
    assert kinds == {"prometheus", "grafana-postgresql-datasource"}


def test_grafana_mounts_and_environment_match_provisioning(config):
    svc = config["services"]["grafana"]
    mounts = _mounts(svc)
    provider = yaml.safe_load((GRAFANA / "dashboards" / "dashboards.yml").read_text())["providers"][0]
    assert mounts[provider["options"]["path"]].endswith("deploy/grafana/dashboards")
    assert mounts["/etc/grafana/provisioning"].endswith("deploy/grafana/provisioning")
    # $VARS in the datasource file are filled from the container environment.
    text = (GRAFANA / "datasources" / "datasources.yml").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    needed = set(re.findall(r"\$([A-Z][A-Z0-9_]*)", body))
    env = service_env(svc)
    assert needed and needed <= set(env), needed - set(env)
    assert env["DASHBOARD_DB_USER"] == service_env(config["services"]["postgres"])["GRAFANA_DB_USER"]
    assert env["DASHBOARD_DB_NAME"] == service_env(config["services"]["postgres"])["POSTGRES_DB"]
    sources = {d["type"]: d for d in yaml.safe_load(text)["datasources"]}
    assert sources["prometheus"]["url"] == "http://prometheus:9090"
    assert sources["grafana-postgresql-datasource"]["url"] == "postgres:5432"


def test_postgres_init_script_gets_its_variables(config):
    svc = config["services"]["postgres"]
    assert _mounts(svc)["/docker-entrypoint-initdb.d"].endswith("deploy/postgres/initdb")
    script = (DEPLOY / "postgres" / "initdb" / "10-grafana-reader.sh").read_text()
    needed = set(re.findall(r"\"\$([A-Z][A-Z0-9_]*)\"", script))
    assert {"GRAFANA_DB_USER", "GRAFANA_DB_PASSWORD", "POSTGRES_USER", "POSTGRES_DB"} <= needed
    assert needed <= set(service_env(svc))


def test_demo_streams_into_the_daemon_input_topic(config):
    demo, daemon = (service_env(config["services"][n]) for n in ("demo", "daemon"))
    assert json.loads(daemon["SENTISTREAM_KAFKA__INPUT_TOPICS"]) == [demo["INPUT_TOPIC"]]
    assert _mounts(config["services"]["demo"])["/deploy/demo"].endswith("deploy/demo")


@pytest.mark.parametrize("script", sorted(p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*.sh")))
def test_shell_scripts_parse_with_posix_sh(script):
    # The Kafka and Postgres images run these with /bin/sh (busybox ash / dash): no bashisms.
    path = DEPLOY / script
    assert os.access(path, os.X_OK), f"{script} must be executable"
    proc = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

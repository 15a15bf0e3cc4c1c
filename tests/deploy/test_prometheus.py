"""Prometheus scrapes the port the daemon serves /metrics on."""

from __future__ import annotations

import yaml

from schemas.settings import Settings
from tests.deploy.stack import DAEMONS, PROMETHEUS, resolved_config, service_env


def _daemon_job() -> dict:
    cfg = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    return jobs["sentistream-daemon"]


def _targets(job: dict) -> list[tuple[str, int]]:
    out = []
    for sd in job.get("dns_sd_configs", []):
        out += [(name, int(sd["port"])) for name in sd["names"]]
    for sc in job.get("static_configs", []):
        out += [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in sc["targets"]]
    return out


def test_scrape_target_port_is_the_daemon_metrics_port():
    job = _daemon_job()
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = _targets(job)
    assert targets, "the sentistream-daemon job has no targets"
    default_port = Settings.model_fields["observability"].default.http_port
    config = resolved_config()
    for host, port in targets:
        assert port == default_port, f"Prometheus scrapes {host}:{port}, the daemon default is {default_port}"
        for name in DAEMONS:
            svc = config["services"][name]
            env = service_env(svc)
            assert int(env.get("SENTISTREAM_OBSERVABILITY__HTTP_PORT", default_port)) == port
            # The DNS name resolves to this flavour's containers.
            aliases = (svc.get("networks") or {}).get("default", {}) or {}
            assert host == name or host in aliases.get("aliases", []), f"{host} does not reach {name}"
            # The container healthcheck probes the same server.
            assert f":{port}/healthz" in " ".join(svc["healthcheck"]["test"])

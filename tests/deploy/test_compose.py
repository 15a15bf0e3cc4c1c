"""docker-compose.yml checked by a real compose implementation (Debian's docker-compose, which
validates and resolves the file without a Docker engine), then its structure."""

from __future__ import annotations

import re

import pytest

from tests.deploy.stack import (
    COMPOSE_FILE,
    DAEMONS,
    DEPLOY,
    PROFILES,
    REQUIRED_SECRETS,
    active_services,
    compose,
    env_example,
    resolved_config,
    service_env,
)

ONE_SHOT = {"topic-init", "migrate"}


@pytest.fixture(scope="module")
def config() -> dict:
    return resolved_config()


def test_compose_config_is_valid(config):
    assert {"kafka", "topic-init", "postgres", "migrate", "daemon", "daemon-cpu", "trainer", "trainer-cpu",
            "prometheus", "grafana", "demo"} <= set(config["services"])
    assert compose("config", "--quiet").returncode == 0


@pytest.mark.parametrize("profile", PROFILES)
def test_compose_config_is_valid_with_each_profile(profile):
    services = set(compose("--profile", profile, "config", "--services").stdout.split())
    assert "daemon" in services and "kafka" in services


@pytest.mark.parametrize("profiles", [{"gpu"}, {"cpu"}, {"gpu", "demo"}, {"cpu", "demo"}])
def test_each_profile_set_is_self_contained(config, profiles):
    active = active_services(config, profiles)
    # Exactly one daemon and one trainer flavour, and nothing depends on a service left out.
    assert len(active & set(DAEMONS)) == 1
    assert len(active & {"trainer", "trainer-cpu"}) == 1
    assert ("demo" in active) == ("demo" in profiles)
    for name in active:
        missing = set(config["services"][name].get("depends_on", {})) - active
        assert not missing, f"{name} depends on {missing}, not started with profiles {profiles}"


def test_missing_password_is_refused_with_its_name():
    env = dict(REQUIRED_SECRETS)
    del env["POSTGRES_PASSWORD"]
    proc = compose("config", env=env, check=False)
    assert proc.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in proc.stderr


def test_every_service_has_a_healthcheck_and_a_restart_policy(config):
    for name, svc in config["services"].items():
        hc = svc.get("healthcheck")
        assert hc and not hc.get("disable") and hc.get("test"), f"{name} has no healthcheck"
        expected = {"no"} if name in ONE_SHOT else {"unless-stopped", "always"}
        assert svc.get("restart") in expected, f"{name}: restart={svc.get('restart')!r}"


def test_depends_on_waits_for_health_or_completion(config):
    for name, svc in config["services"].items():
        for dep, cond in svc.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond.get("condition") == wanted, f"{name} -> {dep}: {cond}"
    for d in (*DAEMONS, "trainer", "trainer-cpu"):
        assert set(config["services"][d]["depends_on"]) == {"topic-init", "migrate"}
    assert set(config["services"]["migrate"]["depends_on"]) == {"postgres"}
    assert set(config["services"]["topic-init"]["depends_on"]) == {"kafka"}


def _mounts(svc: dict) -> dict[str, str]:
    out = {}
    for v in svc.get("volumes", []):
        if isinstance(v, str):
            source, target = v.split(":")[:2]
        else:
            source, target = v["source"], v["target"]
        out[target] = source
    return out


def _published(svc: dict) -> dict[int, tuple[str, int]]:
    """container port -> (host address, host port), from short ("ip:host:container/tcp") or long syntax."""
    out = {}
    for p in svc.get("ports", []):
        if isinstance(p, dict):
            out[int(p["target"])] = (p.get("host_ip", "0.0.0.0"), int(p["published"]))
        else:
            ip, host, container = p.split("/")[0].rsplit(":", 2)
            out[int(container)] = (ip, int(host))
    return out


def test_published_ports_bind_to_localhost_by_default(config):
    for name, svc in config["services"].items():
        for container, (ip, _) in _published(svc).items():
            assert ip == "127.0.0.1", f"{name} publishes {container} on {ip}"
    assert set(_published(config["services"]["grafana"])) == {3000}
    # Daemons publish nothing: replicas scale without port clashes; Prometheus scrapes them inside.
    for name in DAEMONS:
        assert not config["services"][name].get("ports")


def test_named_volumes_for_database_adapters_and_model_cache(config):
    assert {"pgdata", "adapters", "model-cache", "kafka-data"} <= set(config["volumes"])
    s = config["services"]
    assert _mounts(s["postgres"])["/var/lib/postgresql/data"] == "pgdata"
    assert _mounts(s["kafka"])["/var/lib/kafka/data"] == "kafka-data"
    for name in (*DAEMONS, "trainer", "trainer-cpu"):
        m = _mounts(s[name])
        assert m["/var/lib/sentistream/adapters"] == "adapters", name
        assert m["/var/cache/huggingface"] == "model-cache", name
        assert service_env(s[name])["HF_HOME"] == "/var/cache/huggingface"
    # The daemon only reads adapters; the trainer writes them.
    assert any(v.endswith("/var/lib/sentistream/adapters:ro") for v in s["daemon"]["volumes"])
    env = service_env(s["trainer"])
    assert env["SENTISTREAM_TRAINING__ADAPTERS_DIR"] == "/var/lib/sentistream/adapters"


def test_gpu_daemon_reserves_a_gpu_and_cpu_profile_does_not(config):
    s = config["services"]
    for name in ("daemon", "trainer"):
        devices = s[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
        assert s[name]["profiles"] == ["gpu"] and s[name]["build"]["target"] == "gpu"
    for name in ("daemon-cpu", "trainer-cpu"):
        assert "deploy" not in s[name]
        assert s[name]["profiles"] == ["cpu"] and s[name]["build"]["target"] == "cpu"
    # Prometheus finds either flavour under the same DNS name.
    assert "daemon" in s["daemon-cpu"]["networks"]["default"]["aliases"]


def test_daemon_talks_to_real_kafka_transactionally(config):
    s = config["services"]
    kafka = service_env(s["kafka"])
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"] and "ZOOKEEPER" not in " ".join(kafka)
    advertised = dict(item.split("://") for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert set(advertised) == {"INTERNAL", "HOST"}
    assert advertised["HOST"] == "localhost:9092"
    assert _published(s["kafka"]) == {9092: ("127.0.0.1", 9092)}
    for name in DAEMONS:
        env = service_env(s[name])
        assert env["SENTISTREAM_KAFKA__DELIVERY"] == "transactional"
        assert env["SENTISTREAM_KAFKA__BOOTSTRAP_SERVERS"] == advertised["INTERNAL"]
        assert env["SENTISTREAM_DATABASE__URL"].endswith(
            f":{REQUIRED_SECRETS['POSTGRES_PASSWORD']}@postgres:5432/sentistream")


def test_topic_init_takes_topics_and_partitions_from_env():
    cfg = resolved_config(env=REQUIRED_SECRETS | {"INPUT_PARTITIONS": "12", "INPUT_TOPIC": "tweets.in"})
    env = service_env(cfg["services"]["topic-init"])
    assert env["INPUT_PARTITIONS"] == "12" and env["INPUT_TOPIC"] == "tweets.in"
    assert service_env(cfg["services"]["daemon"])["SENTISTREAM_KAFKA__INPUT_TOPICS"] == '["tweets.in"]'
    # Every variable the script reads is given to the container.
    script = (DEPLOY / "kafka" / "create-topics.sh").read_text()
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", script, re.M))
    used = set(re.findall(r"\"\$([A-Z][A-Z0-9_]*)\"", script)) - assigned
    assert {"INPUT_TOPIC", "INPUT_PARTITIONS", "OUTPUT_TOPIC", "DEAD_LETTER_TOPIC", "LABELS_TOPIC"} <= used
    assert used <= set(env), used - set(env)


def test_env_example_documents_every_variable_compose_reads():
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    documented = set(env_example())
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
    # And nothing documented is dead: each is read by compose, is a compose CLI variable, or a setting.
    unused = {v for v in documented - used if not v.startswith(("COMPOSE_", "SENTISTREAM_"))}
    assert not unused, f".env.example documents unused variables: {sorted(unused)}"
    # Passthrough settings documented in .env.example must reach the containers.
    passthrough = {v for v in documented if v.startswith("SENTISTREAM_")}
    compose_text = COMPOSE_FILE.read_text()
    for var in passthrough:
        assert re.search(rf"^\s+{var}:", compose_text, re.M), f"{var} is documented but compose never passes it"

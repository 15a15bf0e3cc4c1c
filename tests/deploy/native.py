"""docker-compose.yml run without a container engine: every service of the resolved compose file whose
image is ours becomes a local process, started in compose's dependency order with the environment
compose gives it, and the services whose images are not ours are replaced by what runs here.

What a container would have and a local process has not, mapped the same way for every service:
- **Its own network address.** Each service replica gets a loopback address of its own (127.0.0.10,
  .11, ...): what it binds on 0.0.0.0 it binds there, and ``127.0.0.1`` in its healthcheck is that
  address. Service host names in its environment and files (``kafka:19092``, ``postgres:5432``,
  ``daemon:9108``) become the address of the process that serves them.
- **Its volumes.** A named volume is a directory of the stack's; a bind mount is the repository
  path; container paths in the environment and in scripts are rewritten to those directories.
- **The images we do not build.** ``kafka``: a tansu broker; ``topic-init``: the same topics and
  partition counts through kafka-python's admin client; ``postgres``: the local server, with the
  role and database the image would create and ``deploy/postgres/initdb`` run as the image runs it;
  ``prometheus``: Debian's ``prometheus`` with ``deploy/prometheus`` (its DNS discovery of ``daemon``
  becomes one target per replica, as compose's DNS answers one A record per container). The demo
  streamer's script runs as written, with a kafka-console-producer stand-in (tests/deploy/
  console_producer.py). Grafana has no native build here; its queries are run against the stack.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import create_engine, make_url, text

from daemon.tansu_broker import TansuBroker
from tests.deploy.stack import REPO

OUR_IMAGE = re.compile(r"^sentistream:")
# Services whose image is not ours but whose script is: run with its paths mapped.
OUR_SCRIPTS = {"demo"}
# Stand-ins that are no process of the stack's: the broker object, a setup step, the shared server.
IN_PROCESS = {"kafka", "topic-init", "postgres"}
NOT_RUN = {"grafana"}
BASE_ENV = ("PATH", "LANG", "HOME")
# From the Dockerfile's final stages (ENV): what every container of our image has.
IMAGE_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def seconds(duration: str | int | float) -> float:
    """A compose duration ("45s", "1m30s", 600) in seconds."""
    if isinstance(duration, (int, float)):
        return float(duration)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    if not parts:
        raise ValueError(f"cannot read the duration {duration!r}")
    return sum(float(n) * units[u] for n, u in parts)


@dataclass
class Replica:
    service: str
    index: int
    address: str
    env: dict[str, str]
    log: Path
    argv: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()


@dataclass
class Stopped:
    name: str
    returncode: int | None
    seconds: float
    killed: bool


@dataclass
class NativeStack:
    config: dict
    profiles: set[str]
    workdir: Path
    admin_url: str
    replicas: dict[str, int] = field(default_factory=dict)
    # Settings a native run needs that a container does not, each with its reason where it is set.
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    running: dict[str, list[Replica]] = field(default_factory=dict)
    endpoints: dict[tuple[str, int], str] = field(default_factory=dict)
    addresses: dict[str, list[str]] = field(default_factory=dict)
    broker: TansuBroker | None = None

    # -- the compose file --------------------------------------------------------------------

    def services(self) -> dict[str, dict]:
        return {n: s for n, s in self.config["services"].items()
                if not s.get("profiles") or self.profiles & set(s["profiles"])}

    def order(self) -> list[str]:
        """Compose's start order: a service after everything it depends on (names break ties)."""
        todo, out = dict(self.services()), []
        while todo:
            ready = sorted(n for n, s in todo.items() if set(s.get("depends_on", {})) <= set(out))
            if not ready:
                raise ValueError(f"dependency cycle among {sorted(todo)}")
            out.append(ready[0])
            del todo[ready[0]]
        return out

    def env_of(self, name: str) -> dict[str, str]:
        env = self.services()[name].get("environment") or {}
        return {k: str(v) for k, v in env.items() if v is not None}

    # -- mapping container paths and names onto this machine ----------------------------------

    def volume_dirs(self, name: str) -> dict[str, Path]:
        out = {}
        for v in self.services()[name].get("volumes", []):
            source, target = v.split(":")[:2]  # docker-compose 1.x prints SOURCE:TARGET[:MODE]
            if source.startswith("/"):
                out[target] = Path(source)
            else:
                out[target] = self.workdir / "volumes" / source
                out[target].mkdir(parents=True, exist_ok=True)
        return out

    def map_value(self, name: str, value: str, extra_paths: dict[str, Path] | None = None) -> str:
        for (host, port), where in self.endpoints.items():
            value = value.replace(f"{host}:{port}", where)
        paths = self.volume_dirs(name) | (extra_paths or {})
        if not paths:
            return value
        # One pass: a path already mapped is not mapped again (/opt/kafka/bin may land under /tmp).
        alternatives = "|".join(re.escape(t) for t in sorted(paths, key=len, reverse=True))
        return re.sub(rf"(?<![\w/])({alternatives})(?=/|\b|$)", lambda m: str(paths[m.group(1)]), value)

    def process_env(self, name: str, address: str) -> dict[str, str]:
        base = {k: os.environ[k] for k in BASE_ENV if k in os.environ}
        base["PATH"] = f"{Path(sys.executable).parent}:{base.get('PATH', '')}"
        base["PYTHONPATH"] = str(REPO)
        env = {k: self.map_value(name, v).replace("0.0.0.0", address) for k, v in self.env_of(name).items()}
        return base | IMAGE_ENV | env | self.extra_env.get(name, {})

    def plan_network(self) -> None:
        """Every replica's address and every service name's endpoint, before anything starts, as
        compose creates the network first: a service may name one that starts after it."""
        n = 10
        for name in self.order():
            if name in NOT_RUN | IN_PROCESS:
                continue
            self.addresses[name] = [f"127.0.0.{n + i}" for i in range(self.replicas.get(name, 1))]
            n += len(self.addresses[name])
            for alias in [name, *self._aliases(name)]:
                for port in self._ports(name):
                    self.endpoints[(alias, port)] = f"{self.addresses[name][0]}:{port}"

    # -- starting -----------------------------------------------------------------------------

    def up(self, before: dict[str, Callable[[NativeStack], None]] | None = None, timeout: float = 600) -> None:
        """Start everything; ``before[name]`` runs once the service's dependencies are met, just before
        it starts (an operator's one-off ``docker compose run``)."""
        self.plan_network()
        for name in self.order():
            if name in NOT_RUN:
                continue
            self.wait_dependencies(name, timeout)
            if before and name in before:
                before[name](self)
            self.start(name)
            self.started.append(name)

    def wait_dependencies(self, name: str, timeout: float) -> None:
        for dep, cond in self.services()[name].get("depends_on", {}).items():
            if cond["condition"] == "service_completed_successfully":
                self.wait_completed(dep, timeout)
            elif cond["condition"] == "service_healthy":
                self.wait_healthy(dep, timeout)

    def start(self, name: str) -> None:
        if name == "kafka":
            self.broker = TansuBroker()
            self.endpoints[("kafka", 19092)] = self.broker.bootstrap_servers
            self.running[name] = []
        elif name == "topic-init":
            self.create_topics(self.env_of(name))
            self.running[name] = []
        elif name == "postgres":
            self.prepare_postgres(self.env_of(name))
            server = make_url(self.admin_url)
            self.endpoints[("postgres", 5432)] = f"{server.host}:{server.port or 5432}"
            self.running[name] = []
        elif name == "prometheus":
            self.running[name] = [self.spawn(name, 0, self.prometheus_command)]
        elif name in OUR_SCRIPTS:
            self.running[name] = [self.spawn(name, 0, self.script_command)]
        elif OUR_IMAGE.match(self.services()[name].get("image", "")):
            count = self.replicas.get(name, 1)
            self.running[name] = [self.spawn(name, i, self.image_command) for i in range(count)]
        else:
            raise ValueError(f"{name}: no native stand-in for image {self.services()[name].get('image')}")

    def spawn(self, name: str, index: int, command) -> Replica:
        address = self.addresses[name][index]
        env = self.process_env(name, address)
        if OUR_IMAGE.match(self.services()[name].get("image", "")):
            # The image's default listen address, 0.0.0.0: here, the replica's own address.
            env.setdefault("SENTISTREAM_OBSERVABILITY__HTTP_HOST", address)
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        rep = Replica(name, index, address, env, self.workdir / "logs" / f"{name}-{index}.log")
        rep.argv = command(rep)
        self._popen(rep)
        return rep

    def _popen(self, rep: Replica) -> None:
        # A session of its own: what a container's teardown kills with it (see stop()).
        with rep.log.open("ab") as log:
            rep.proc = subprocess.Popen(rep.argv, env=rep.env, cwd=self.workdir, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def restart(self, name: str) -> None:
        """Start a stopped service's replicas again on their addresses (``docker compose start``)."""
        for rep in self.running[name]:
            self._popen(rep)

    def _aliases(self, name: str) -> list[str]:
        nets = self.services()[name].get("networks") or {}
        return list(((nets.get("default") or {}).get("aliases")) or [])

    def _ports(self, name: str) -> list[int]:
        """The ports a service serves inside the network: published ones and the healthcheck's."""
        # docker-compose 1.x prints [HOST:]PUBLISHED:TARGET/PROTOCOL
        ports = {int(p.split("/")[0].rsplit(":", 1)[1]) for p in self.services()[name].get("ports", [])}
        ports |= {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", self._healthcheck_text(name))}
        return sorted(ports)

    def _healthcheck_text(self, name: str) -> str:
        return " ".join((self.services()[name].get("healthcheck") or {}).get("test", []))

    def image_command(self, rep: Replica) -> list[str]:
        return self.run_command(self.services()[rep.service]["command"])

    @staticmethod
    def run_command(args: list[str]) -> list[str]:
        """The image's ENTRYPOINT, the sentistream console script, with these arguments."""
        return [sys.executable, "-m", "schemas.cli", *args]

    def one_off(self, name: str, args: list[str], stdin: str = "") -> subprocess.CompletedProcess:
        """``docker compose run --rm NAME ARGS``: the service's image and environment, another command."""
        env = self.process_env(name, "127.0.0.1")
        return subprocess.run(self.run_command(args), env=env, cwd=self.workdir, input=stdin, capture_output=True,
                              text=True, timeout=300)

    def script_command(self, rep: Replica) -> list[str]:
        """The service's entrypoint script, its container paths mapped to this machine's."""
        svc = self.services()[rep.service]
        tmp = self.workdir / "tmp" / rep.name
        tmp.mkdir(parents=True, exist_ok=True)
        shims = self.workdir / "bin"
        shims.mkdir(exist_ok=True)
        producer = shims / "kafka-console-producer.sh"
        producer.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.deploy.console_producer "$@"\n')
        producer.chmod(0o755)
        paths = {"/tmp": tmp, "/opt/kafka/bin": shims}
        rep.env["NATIVE_PATHS"] = json.dumps({k: str(v) for k, v in paths.items()})
        shell, script = svc["entrypoint"]
        source = Path(self.map_value(rep.service, script))
        mapped = self.workdir / f"{rep.name}.sh"
        mapped.write_text(self.map_value(rep.service, source.read_text(), paths))
        return [shell, str(mapped)]

    def prometheus_command(self, rep: Replica) -> list[str]:
        svc = self.services()[rep.service]
        mounts = self.volume_dirs(rep.service)
        conf_dir = self.workdir / "prometheus"
        conf_dir.mkdir(exist_ok=True)
        for target, source in mounts.items():
            if target.startswith("/etc/prometheus/"):
                shutil.copy(source, conf_dir / Path(target).name)
        conf = conf_dir / "prometheus.yml"
        conf.write_text(yaml.safe_dump(self.prometheus_config(yaml.safe_load(conf.read_text()), rep.address)))
        args = [a.replace("/etc/prometheus", str(conf_dir)) for a in svc["command"]]
        args = [self.map_value(rep.service, a) for a in args]
        return ["prometheus", *args, f"--web.listen-address={rep.address}:9090"]

    def prometheus_config(self, cfg: dict, own: str) -> dict:
        """Targets by service name become the replicas' addresses; DNS discovery a static list."""
        for job in cfg["scrape_configs"]:
            targets = []
            for sd in job.pop("dns_sd_configs", []):
                targets += [f"{a}:{sd['port']}" for n in sd["names"] for a in self.addresses_named(n)]
            for sc in job.pop("static_configs", []):
                for t in sc["targets"]:
                    host, port = t.rsplit(":", 1)
                    targets.append(f"{own}:{port}" if host == "localhost" else
                                   self.endpoints.get((host, int(port)), t))
            job["static_configs"] = [{"targets": targets}]
        return cfg

    @property
    def client_kwargs(self) -> dict:
        """How a Kafka client on this machine reaches the stack's broker (tests.brokers.Broker's shape,
        so tests/daemon/harness.py's readers take the stack)."""
        return {"bootstrap_servers": self.broker.bootstrap_servers}

    def addresses_named(self, host: str) -> list[str]:
        """Every replica's address a compose DNS name answers with: the service's, or an alias's."""
        return [a for n, addrs in self.addresses.items() for a in addrs if host == n or host in self._aliases(n)]

    # -- stand-ins ------------------------------------------------------------------------------

    def create_topics(self, env: dict[str, str]) -> None:
        """What deploy/kafka/create-topics.sh does, through kafka-python's admin client."""
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.broker.bootstrap_servers)
        try:
            admin.create_topics([
                NewTopic(env["INPUT_TOPIC"], int(env["INPUT_PARTITIONS"]), 1),
                NewTopic(env["OUTPUT_TOPIC"], int(env["OUTPUT_PARTITIONS"]), 1),
                NewTopic(env["DEAD_LETTER_TOPIC"], int(env["DEAD_LETTER_PARTITIONS"]), 1,
                         topic_configs={"retention.ms": env["DEAD_LETTER_RETENTION_MS"]}),
                NewTopic(env["LABELS_TOPIC"], int(env["LABELS_PARTITIONS"]), 1),
            ])
        finally:
            admin.close()

    def prepare_postgres(self, env: dict[str, str]) -> None:
        """The postgres image's first start: its superuser and database, then docker-entrypoint-initdb.d."""
        user, db, pw = env["POSTGRES_USER"], env["POSTGRES_DB"], env["POSTGRES_PASSWORD"].replace("'", "''")
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as c:
            c.execute(text(f"CREATE ROLE \"{user}\" LOGIN SUPERUSER PASSWORD '{pw}'"))
            c.execute(text(f'CREATE DATABASE "{db}" OWNER "{user}"'))
        engine.dispose()
        initdb = self.volume_dirs("postgres")["/docker-entrypoint-initdb.d"]
        for script in sorted(initdb.glob("*.sh")):
            subprocess.run(["sh", str(script)], env=self.postgres_env(), check=True, capture_output=True, timeout=60)

    def postgres_env(self) -> dict[str, str]:
        """What a command inside the postgres container has: the service's environment, and psql's
        client tools pointed at the server that plays it."""
        server = make_url(self.admin_url)
        return ({k: os.environ[k] for k in BASE_ENV if k in os.environ} | self.env_of("postgres")
                | {"PGHOST": server.host or "127.0.0.1", "PGPORT": str(server.port or 5432)})

    def drop_postgres(self) -> None:
        env = self.env_of("postgres")
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{env["POSTGRES_DB"]}" WITH (FORCE)'))
            for role in (env["GRAFANA_DB_USER"], env["POSTGRES_USER"]):
                c.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        engine.dispose()

    # -- health ---------------------------------------------------------------------------------

    def healthcheck(self, rep: Replica) -> subprocess.CompletedProcess:
        """The service's healthcheck command as written, in its environment and on its address."""
        hc = self.services()[rep.service]["healthcheck"]
        kind, *args = hc["test"]
        args = [a.replace("127.0.0.1", rep.address) for a in args]
        paths = json.loads(rep.env.get("NATIVE_PATHS", "{}"))
        args = [self.map_value(rep.service, a, {k: Path(v) for k, v in paths.items()}) for a in args]
        if kind == "CMD-SHELL":
            args = ["sh", "-c", args[0].replace("$$", "$")]
        elif args[0] == "python":
            args[0] = sys.executable
        return subprocess.run(args, env=rep.env, cwd=self.workdir, capture_output=True, text=True,
                              timeout=seconds(hc.get("timeout", "30s")))

    def healthy(self, name: str) -> bool:
        if name == "kafka":
            return self.broker is not None and self.broker.proc.poll() is None
        if name == "postgres":
            test = self.services()[name]["healthcheck"]["test"][1].replace("$$", "$")
            return subprocess.run(["sh", "-c", test], env=self.postgres_env(), timeout=10).returncode == 0
        if name == "prometheus":
            rep = self.running[name][0]
            return _http_ok(f"http://{rep.address}:9090/-/healthy")
        reps = self.running.get(name, [])
        return bool(reps) and all(r.returncode() is None and self.healthcheck(r).returncode == 0 for r in reps)

    def wait_healthy(self, name: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy(name):
            self._check_alive(name)
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not healthy after {timeout:.0f} s\n{self.log_tail(name)}")
            time.sleep(1)

    def wait_completed(self, name: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        for rep in self.running.get(name, []):
            while rep.returncode() is None:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} did not finish in {timeout:.0f} s\n{self.log_tail(name)}")
                time.sleep(0.5)
            assert rep.returncode() == 0, f"{name} exited {rep.returncode()}\n{self.log_tail(name)}"

    def _check_alive(self, name: str) -> None:
        for rep in self.running.get(name, []):
            if rep.returncode() is not None:
                raise AssertionError(f"{rep.name} exited {rep.returncode()}\n{self.log_tail(name)}")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        return "\n".join(f"--- {r.name}\n{r.log.read_text(errors='replace')[-chars:]}"
                         for r in self.running.get(name, []) if r.log.exists())

    # -- stopping -------------------------------------------------------------------------------

    def stop(self, names: Iterable[str]) -> list[Stopped]:
        """SIGTERM to every replica at once, SIGKILL after the service's stop_grace_period (compose's
        default 10 s), as ``docker compose stop`` does."""
        return self.stop_replicas([r for n in names for r in self.running.get(n, [])])

    def stop_replicas(self, replicas: Iterable[Replica]) -> list[Stopped]:
        reps = [r for r in replicas if r.returncode() is None]
        t0 = time.monotonic()
        for r in reps:
            r.proc.send_signal(signal.SIGTERM)
        out = []
        for r in reps:
            grace = seconds(self.services()[r.service].get("stop_grace_period", "10s"))
            killed = False
            try:
                r.proc.wait(timeout=max(0.0, grace - (time.monotonic() - t0)))
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()
                killed = True
            out.append(Stopped(r.name, r.proc.returncode, time.monotonic() - t0, killed))
            # The container ends with its main process: so does everything it started.
            try:
                os.killpg(r.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return out

    def down(self) -> list[Stopped]:
        """``docker compose stop``: every service, in reverse start order. The broker and the database
        stay for the caller to inspect (``close``)."""
        stopped = []
        for name in reversed(self.started):
            stopped += self.stop([name])
        return stopped

    def close(self) -> None:
        """Everything stopped, the broker's memory and the stack's database and roles gone."""
        self.down()
        if self.broker is not None:
            self.broker.close()
        self.drop_postgres()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status == 200
    except OSError:
        return False

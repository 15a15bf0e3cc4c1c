"""A PostgreSQL server owned by one test: its own data directory and port, stopped and started at will."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from daemon.tansu_broker import free_port

PG_BIN = Path(os.environ.get("SENTISTREAM_PG_BIN", "/usr/lib/postgresql/15/bin"))


class OwnPostgres:
    """initdb + pg_ctl. Postgres refuses to run as root, so under root it runs as ``postgres``."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").is_file():
            raise FileNotFoundError(f"{PG_BIN}/initdb not found (set SENTISTREAM_PG_BIN)")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="sentistream-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str) -> None:
        r = subprocess.run([*self._as_user, str(PG_BIN / tool), *args],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        if r.returncode:
            raise RuntimeError(f"{tool} failed ({r.returncode}): {r.stderr.decode()[-1000:]}")

    def start(self, **server_settings: str) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        opts += "".join(f" -c {k}={v}" for k, v in server_settings.items())
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return subprocess.run([*self._as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def own(self, path: Path) -> None:
        """Hand a file the server must read (a TLS key) to the server's user."""
        if self._as_user:
            shutil.chown(path, "postgres")

    def close(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

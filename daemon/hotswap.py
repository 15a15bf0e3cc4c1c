"""Adapter hot swap: follow the registry's active adapter without a restart.

The trainer promotes an adapter by marking its registry row active and sending NOTIFY; this
watcher wakes on the notification (or on its polling interval, the fallback), checks the files'
sha256 against the registry, loads a new classifier beside the serving one and hands it to the
inference worker, which swaps between two batches. A bad adapter is refused and the old one keeps
serving.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy import select
from sqlalchemy.engine import Engine, make_url

from models.base import Classifier
from schemas.db import AdapterRow
from schemas.errors import SentistreamError
from schemas.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ActiveAdapter:
    version: str
    path: Path
    sha256: str


def active_adapter(engine: Engine, name: str) -> ActiveAdapter | None:
    T = AdapterRow.__table__
    query = (select(T.c.version, T.c.artifact_path, T.c.sha256)
             .where(T.c.name == name, T.c.status == "active").order_by(T.c.created_at.desc()).limit(1))
    with engine.connect() as c:
        row = c.execute(query).first()
    return ActiveAdapter(str(row.version), Path(row.artifact_path), row.sha256) if row else None


def load_adapter_classifier(settings: Settings, adapter: ActiveAdapter) -> Classifier:
    """Verify the files against the registry's sha256, then load base + adapter."""
    from models.checks import check_sha256
    from models.loading import load_classifier

    check_sha256(adapter.path, adapter.sha256)
    model = settings.model.model_copy(update={
        "adapter_path": adapter.path, "adapter_version": adapter.version, "adapter_sha256": adapter.sha256,
    })
    return load_classifier(model)


class AdapterWatcher:
    def __init__(self, settings: Settings, engine: Engine, swap: Callable[[Classifier], None],
                 current_version: str | None) -> None:
        self.settings = settings
        self.engine = engine
        self.swap = swap
        self.name = settings.training.adapter_name
        self.channel = settings.training.notify_channel
        self.current = current_version
        self.refused: set[str] = set()
        self.last_swap_load_s: float | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="adapter-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if self.engine.dialect.name == "postgresql":
            threading.Thread(target=self._listen, name="adapter-listen", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as e:  # noqa: BLE001 - the watcher must outlive database hiccups
                log.warning("adapter_check_failed", error=f"{type(e).__name__}: {e}"[:300])
            self._wake.wait(self.settings.model.registry_poll_s)
            self._wake.clear()

    def check(self) -> bool:
        """Swap to the active adapter if it changed; True when a swap happened."""
        active = active_adapter(self.engine, self.name)
        if active is None or active.version == self.current or active.version in self.refused:
            return False
        t0 = time.perf_counter()
        try:
            classifier = load_adapter_classifier(self.settings, active)
        except SentistreamError as e:
            self.refused.add(active.version)
            log.error("adapter_refused", version=active.version, error=str(e)[:500],
                      serving=self.current)
            return False
        self.last_swap_load_s = time.perf_counter() - t0
        self.swap(classifier)
        log.info("adapter_swapped", old=self.current, new=active.version,
                 load_seconds=round(self.last_swap_load_s, 3))
        self.current = active.version
        return True

    def _listen(self) -> None:
        """LISTEN on the registry channel; reconnects with a pause when the database goes away."""
        import psycopg

        url = make_url(self.settings.database.url.get_secret_value()).set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._wake.set()
            except psycopg.Error as e:
                log.warning("adapter_listen_reconnect", error=type(e).__name__)
                self._stop.wait(5.0)

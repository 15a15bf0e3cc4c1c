"""Helpers for the reliability suite: a paced producer and an HTTP probe."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

from kafka import KafkaProducer


class PacedProducer(threading.Thread):
    """Streams ``records`` at ``rate`` per second from a thread, like a live source."""

    def __init__(self, broker, topic: str, records: list, rate: float) -> None:
        super().__init__(daemon=True)
        self.broker, self.topic, self.records, self.rate = broker, topic, records, rate
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            p = KafkaProducer(**self.broker.client_kwargs, acks="all", linger_ms=5)
            t0 = time.monotonic()
            for i, (key, value) in enumerate(self.records):
                delay = t0 + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                p.send(self.topic, key=key, value=value)
                self.sent += 1
            p.flush()
            p.close()
        except BaseException as e:  # noqa: BLE001 - reported by finish()
            self.error = e

    def finish(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), "producer did not finish"
        if self.error:
            raise self.error


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return -1

"""Failed logins per user and client address in a sliding minute; past the limit, login answers 429."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable

WINDOW_S = 60.0


class LoginLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        q, now = self._failures[key], self.clock()
        while q and now - q[0] > WINDOW_S:
            q.popleft()
        return q

    def blocked(self, user: str, address: str) -> bool:
        return len(self._recent((user, address))) >= self.per_minute

    def failed(self, user: str, address: str) -> None:
        self._recent((user, address)).append(self.clock())

    def succeeded(self, user: str, address: str) -> None:
        self._failures.pop((user, address), None)

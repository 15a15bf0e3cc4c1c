"""What every request handler reads: the settings, the engine, the login limiter, the templates."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from console.ratelimit import LoginLimiter
from schemas.settings import Settings

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


@dataclass
class Console:
    settings: Settings
    engine: Engine
    limiter: LoginLimiter
    rng: random.Random = field(default_factory=random.Random)

    async def read(self, fn, *args):
        """``fn(connection, *args)`` in a worker thread: the event loop never waits on Postgres."""
        def run():
            with self.engine.connect() as c:
                return fn(c, *args)
        return await run_in_threadpool(run)

    async def write(self, fn, *args):
        """``fn(connection, *args)`` in one transaction, in a worker thread."""
        def run():
            with self.engine.begin() as c:
                return fn(c, *args)
        return await run_in_threadpool(run)


def console(request: Request) -> Console:
    return request.app.state.console

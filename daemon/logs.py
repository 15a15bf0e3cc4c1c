"""structlog set-up: JSON lines in production, pretty console output on a terminal.

Message text is never logged at info level; events carry ids, counts and timings only.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from schemas.settings import ObservabilitySettings


def configure_logging(settings: ObservabilitySettings, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    level = getattr(logging, settings.log_level)
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    # kafka-python and transformers log through stdlib logging; keep them at warning and above.
    logging.basicConfig(level=max(level, logging.WARNING), stream=stream)

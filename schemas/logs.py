"""Logging for every command: JSON lines or console text on stderr, one format for everything.

structlog events and the standard library's loggers (kafka, peft, bitsandbytes, alembic...), Python
warnings included, all go through one handler and one renderer, so a JSON log is JSON on every line.
Message text is never logged at info level; events carry ids, counts and timings only.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import TextIO

import structlog
from structlog.stdlib import ProcessorFormatter

from schemas.settings import ObservabilitySettings

# Every structlog event goes through this stdlib logger; it alone carries the configured level.
_EVENTS = "sentistream"

# Library output a user cannot act on. Each value is a default the user's environment may override.
_QUIET_ENV = {
    # transformers' load report ("MISSING classifier ... Consider training") while an adapter
    # supplies the head, and its advice; read when transformers is first imported.
    "TRANSFORMERS_VERBOSITY": "error",
    # "Loading weights" bars (transformers and huggingface_hub read this at import).
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}
# bitsandbytes asks for `pip install kernels`, a CPU 4-bit kernel it would fetch from the Hub.
_QUIET_LOGGERS = {"bitsandbytes.backends.cpu.ops": logging.ERROR}
# peft reads a deprecated transformers property while wrapping a model.
_IGNORED_WARNINGS = ((FutureWarning, r"`is_gradient_checkpointing` is deprecated"),)

_progress_bars = True


class _Stderr:
    """sys.stderr looked up per write: it may be replaced (pytest capture, redirection)."""

    def write(self, s: str) -> int:
        return sys.stderr.write(s)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


class _Handler(logging.StreamHandler):
    """The one handler configure_logging installs (and replaces when called again)."""


def progress_bars() -> bool:
    """Whether a long job may draw a progress bar: only beside console logs on a terminal."""
    return _progress_bars


def configure_logging(settings: ObservabilitySettings, stream: TextIO | None = None) -> None:
    """Route structlog, stdlib logging and warnings to ``stream`` (stderr) in ``settings.log_format``."""
    global _progress_bars
    out = stream or _Stderr()
    level = getattr(logging, settings.log_level)
    console = settings.log_format == "console" or (settings.log_format == "auto" and out.isatty())
    _progress_bars = console and out.isatty()

    shared = [structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
              structlog.processors.TimeStamper(fmt="iso", utc=True)]
    if console:
        # Plain tracebacks: rich's would print every frame's local variables, message texts included.
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty(),
                                                 exception_formatter=structlog.dev.plain_traceback)
    else:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    structlog.configure(
        processors=[*shared, ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: logging.getLogger(_EVENTS),
        cache_logger_on_first_use=False,
    )
    handler = _Handler(out)
    handler.setFormatter(ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, _strip_event],
        processors=[ProcessorFormatter.remove_processors_meta, renderer],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))  # libraries: warnings and errors only
    logging.getLogger(_EVENTS).setLevel(level)
    logging.captureWarnings(False)  # a second configuration routes warnings anew, not to a stale target
    logging.captureWarnings(True)
    _quiet_libraries()


def _strip_event(_logger, _method: str, event_dict: dict) -> dict:
    # Warnings arrive as "file:line: Category: message\n"; the renderer ends the line itself.
    event_dict["event"] = str(event_dict["event"]).rstrip()
    return event_dict


def _quiet_libraries() -> None:
    for name, value in _QUIET_ENV.items():
        os.environ.setdefault(name, value)
    for name, level in _QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    for category, message in _IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)

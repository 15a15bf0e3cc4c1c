"""The real ``sentistream`` CLI as a subprocess, in a clean environment (no SENTISTREAM_* set but
what the test passes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

COMMAND = [sys.executable, "-m", "schemas.cli"]


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTISTREAM_")}
    env.update(settings)
    return env


def sentistream(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
                stdin: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run one command; no traceback is ever acceptable."""
    proc = subprocess.run([*COMMAND, *args], env=env if env is not None else clean_env(), cwd=cwd,
                          input=stdin, capture_output=True, timeout=timeout)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert "Traceback" not in out, out[-3000:]
    return proc


def json_lines(text: bytes | str) -> list[dict]:
    """Every line parsed as one JSON object (fails on the first line that is not)."""
    lines = text.decode() if isinstance(text, bytes) else text
    rows = [json.loads(line) for line in lines.splitlines()]
    assert all(isinstance(r, dict) for r in rows), rows
    return rows

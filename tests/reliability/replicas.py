"""Helpers for tests that run several `sentistream run` replicas in one group: their environment and
what their JSON logs say."""

from __future__ import annotations

import json
import subprocess

from tests.daemon.harness import default_env, log_of


def events(proc: subprocess.Popen, name: str) -> list[dict]:
    """The JSON log lines of ``proc`` whose event is ``name`` (the daemon logs JSON when not on a TTY)."""
    out = []
    for line in log_of(proc, tail=None).splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            if doc.get("event") == name:
                out.append(doc)
    return out


def holds_partitions(proc: subprocess.Popen) -> bool:
    assigned = events(proc, "partitions_assigned")
    return bool(assigned and assigned[-1]["partitions"])


def scale_out_env(broker, database_url, topics, model_dir) -> dict[str, str]:
    return default_env(
        broker, database_url, topics,
        # A tiny model: the test is about the group and delivery, not inference, on two shared cores.
        SENTISTREAM_MODEL__PATH=str(model_dir),
        # Replicas on one host cannot share the default metrics port (9108); 0 serves none.
        SENTISTREAM_OBSERVABILITY__HTTP_PORT="0",
    )

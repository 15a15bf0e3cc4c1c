"""The daemon's consumer lag, read from its /metrics (console.daemon_metrics_url). Unset, unreachable
or unreadable: None, which the live view shows as "not reachable"; never an error."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

LAG_METRIC = "sentistream_consumer_lag"
TIMEOUT_S = 2.0


def consumer_lag(url: str | None) -> float | None:
    """The summed lag over every partition the daemon reports."""
    if not url:
        return None
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:
            body = r.read(4 * 1024 * 1024).decode("utf-8", errors="replace")
        families = list(text_string_to_metric_families(body))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    samples = [s.value for f in families if f.name == LAG_METRIC for s in f.samples]
    return float(sum(samples)) if samples else None

"""Grafana's side of the dashboard: its query targets and the Postgres macro expansion, ported from
Grafana's pkg/tsdb/grafana-postgresql-datasource/macros.go so queries run here as Grafana runs them."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

_MACRO = re.compile(r"\$(__[_a-zA-Z0-9]+)\(([^)]*)\)")
_INTERVAL = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _seconds(interval: str) -> str:
    m = _INTERVAL.match(interval.strip().strip("'"))
    if not m:
        raise ValueError(f"cannot parse interval {interval!r}")
    s = int(m.group(1)) * _UNIT_S[m.group(2)]
    return str(int(s)) if float(s).is_integer() else str(s)


def interpolate(sql: str, start: datetime, end: datetime) -> str:
    """Expand the time macros Grafana's Postgres data source supports; anything else is an error,
    as it would be in Grafana."""

    def expand(m: re.Match) -> str:
        name = m.group(1)
        args = [a.strip() for a in m.group(2).split(",")] if m.group(2).strip() else []
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{_rfc3339(start)}' AND '{_rfc3339(end)}'"
        if name == "__timeFrom":
            return f"'{_rfc3339(start)}'"
        if name == "__timeTo":
            return f"'{_rfc3339(end)}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            s = _seconds(args[1])
            group = f"floor(extract(epoch from {args[0]})/{s})*{s}"
            return group + ' AS "time"' if name == "__timeGroupAlias" else group
        raise ValueError(f"unknown macro ${name}")

    out = _MACRO.sub(expand, sql)
    if "$" in out:
        raise ValueError(f"unexpanded Grafana variable left in query: {out!r}")
    return out


def dashboard_targets(path: Path) -> list[tuple[dict, dict]]:
    """(panel, target) for every query target, rows included."""
    dash = json.loads(path.read_text())
    out = []
    for panel in dash["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                out.append((inner, target))
    return out


def sql_targets(path: Path) -> list[tuple[dict, dict]]:
    return [(p, t) for p, t in dashboard_targets(path) if "rawSql" in t]


def prometheus_targets(path: Path) -> list[tuple[dict, dict]]:
    return [(p, t) for p, t in dashboard_targets(path) if "expr" in t]

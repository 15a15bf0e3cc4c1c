"""deploy/prometheus/alerts.yml: valid rules (promtool, where installed: `make prometheus-tool`), on the
gauges the console exports, loaded by prometheus.yml."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from console.drift import Baseline, SourceDrift
from console.metrics import families
from console.views import Drift
from tests.conftest import REPO

PROMETHEUS = REPO / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
NEEDS_PROMTOOL = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not installed (make prometheus-tool)")


@NEEDS_PROMTOOL
def test_promtool_accepts_the_rules():
    proc = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@NEEDS_PROMTOOL
def test_a_drift_held_for_30_minutes_fires_and_a_blip_does_not():
    """deploy/prometheus/alerts_test.yml: forced series through the rules, as Prometheus evaluates them."""
    proc = subprocess.run(["promtool", "test", "rules", str(PROMETHEUS / "alerts_test.yml")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr


def test_prometheus_loads_the_rules_file():
    assert ALERTS.name in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["rule_files"]


def test_every_rule_reads_a_gauge_the_console_exports():
    drifted = SourceDrift("s", 4, {"a": 1.0}, {"a": 0.5}, 0.5, 0.4, True, True)
    exported = {f.name for f in families(Drift(Baseline("v", {"a": 0.5}, 0.9), [drifted]))}
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    assert rules
    for rule in rules:
        used = set(re.findall(r"sentistream_console_[a-z_]+", rule["expr"]))
        assert used and used <= exported, rule["alert"]

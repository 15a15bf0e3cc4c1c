"""The live view's numbers, drift against the active adapter's training distribution (a hand-computed
case), its Prometheus gauges, and the daemon's consumer lag when its /metrics is reachable."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from starlette.testclient import TestClient

from console.app import build_app
from console.drift import Baseline, baseline, source_drift
from console.lag import consumer_lag
from console.queries import SourceStats
from daemon.tansu_broker import free_port
from tests.console.conftest import login, settings_for


def test_live_data_counts_the_window(as_user):
    d = as_user("viewer").get("/live/data").json()
    assert sum(m["n"] for m in d["per_minute"]) == 20
    assert sum(b["n"] for b in d["confidence"]) == 20 and len(d["confidence"]) == 10
    assert {(k["kind"], k["n"]) for k in d["dead_letters"]} == {("empty_text", 2), ("bad_json", 1)}
    assert d["serving"] == [{"kind": "v1", "n": 20}] and d["active_version"] == "v1"
    assert {(s["source"], s["label"]) for s in d["label_share"]} == {
        ("reviews", "negative"), ("reviews", "positive"), ("tweets", "negative"), ("tweets", "positive")}
    # console.daemon_metrics_url is unset by default: shown as not reachable, never an error.
    assert d["consumer_lag"] is None
    assert 'id="consumer-lag"' in as_user("viewer").get("/").text


def test_drift_of_a_hand_computed_source():
    """3 negative, 1 positive at mean confidence 0.85 against 50/50 training and gold accuracy 0.9."""
    base = Baseline("v", {"negative": 0.5, "positive": 0.5}, 0.9)
    d = source_drift(SourceStats("s", {"negative": 3, "positive": 1}, 0.85), base, 0.15, 0.1)
    assert d.n == 4 and d.shares == {"negative": 0.75, "positive": 0.25}
    assert d.share_diff == pytest.approx({"negative": 0.25, "positive": -0.25})
    assert d.confidence_drop == pytest.approx(0.05)
    assert d.share_warning and not d.confidence_warning and d.warning


def test_an_adapter_without_a_recorded_distribution_gives_no_share_warning():
    base = baseline({"version": "old", "metrics": {}})
    d = source_drift(SourceStats("s", {"negative": 4}, 0.99), base, 0.15, 0.1)
    assert base.shares == {} and d.share_diff == {} and not d.warning


def test_the_drift_page_and_metrics_on_the_seeded_window(as_user, client):
    # reviews: 4 negative, 3 positive (shares .571/.429, within 0.15 of 50/50), mean confidence
    # (.51+.54+.57+.60+.63+.66+.69)/7 = 0.60, 0.30 below the gold accuracy 0.9: a confidence warning.
    page = as_user("viewer").get("/drift").text
    assert '<tr class="drift-warning" data-source="reviews">' in page
    assert "confidence dropped" in page and "label shares drifted" not in page
    assert "0.600" in page
    body = client.get("/metrics").text
    assert 'sentistream_console_drift_warning{kind="confidence",source="reviews"} 1.0' in body
    assert 'sentistream_console_drift_warning{kind="label_share",source="reviews"} 0.0' in body
    assert 'sentistream_console_mean_confidence{source="reviews"} 0.6' in body


def test_consumer_lag_from_a_reachable_daemon_metrics_url(console_db):
    registry = CollectorRegistry()
    lag = Gauge("sentistream_consumer_lag", "lag", ["topic", "partition"], registry=registry)
    lag.labels("in", "0").set(5)
    lag.labels("in", "1").set(7)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert consumer_lag(url) == 12.0
        # A non-default setting: the daemon's metrics URL, here the stand-in exporter above.
        app = build_app(settings_for(console_db, daemon_metrics_url=url), console_db.engine)
        with TestClient(app) as c:
            login(c, "viewer")
            assert c.get("/live/data").json()["consumer_lag"] == 12.0
    finally:
        server.shutdown()
        thread.join()
    assert consumer_lag(url) is None  # the exporter is gone: not reachable, no error

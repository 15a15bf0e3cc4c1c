"""The console's /metrics: drift per source, computed from the database at each scrape, so Prometheus
can alert on it (deploy/prometheus/alerts.yml)."""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import exc
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from console.views import Drift, drift_view
from schemas.settings import Settings

log = structlog.get_logger("console.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def families(view: Drift) -> list[GaugeMetricFamily]:
    share = GaugeMetricFamily("sentistream_console_label_share_drift", "Recent label share minus the active "
                              "adapter's training share, per source", labels=["source", "label"])
    conf = GaugeMetricFamily("sentistream_console_mean_confidence", "Mean confidence in the recent window",
                             labels=["source"])
    drop = GaugeMetricFamily("sentistream_console_confidence_drop", "Active adapter's gold accuracy minus the "
                             "recent mean confidence", labels=["source"])
    warn = GaugeMetricFamily("sentistream_console_drift_warning", "1 while a drift bound is crossed",
                             labels=["source", "kind"])
    for s in view.sources:
        for label, d in s.share_diff.items():
            share.add_metric([s.source, label], d)
        conf.add_metric([s.source], s.mean_confidence)
        if s.confidence_drop is not None:
            drop.add_metric([s.source], s.confidence_drop)
        warn.add_metric([s.source, "label_share"], float(s.share_warning))
        warn.add_metric([s.source, "confidence"], float(s.confidence_warning))
    return [share, conf, drop, warn]


class DriftCollector(Collector):
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self.engine.connect() as c:
                view = drift_view(c, self.settings)
        except exc.SQLAlchemyError as e:
            log.warning("console.metrics_unavailable", error=type(e).__name__)
            return
        yield from families(view)


def registry(engine: Engine, settings: Settings) -> CollectorRegistry:
    r = CollectorRegistry(auto_describe=False)
    r.register(DriftCollector(engine, settings))
    return r


async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(generate_latest, request.app.state.metrics)
    return Response(body, media_type=CONTENT_TYPE)

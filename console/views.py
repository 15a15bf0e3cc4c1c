"""What the live view and the drift page show, read in one connection each."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Connection

from console import queries
from console.drift import Baseline, SourceDrift, baseline, drift
from schemas.settings import Settings


@dataclass(frozen=True)
class Live:
    window_minutes: int
    per_minute: list[queries.MinuteCount]
    label_share: list[queries.LabelShare]
    confidence: list[queries.Bin]
    dead_letters: list[queries.KindCount]
    serving: list[queries.KindCount]
    active_version: str | None

    def to_json(self, lag: float | None) -> dict:
        def minute(m: datetime) -> str:
            return m.astimezone(UTC).strftime("%H:%M")
        return {
            "window_minutes": self.window_minutes,
            "per_minute": [{"minute": minute(m.minute), "n": m.n} for m in self.per_minute],
            "label_share": [{"minute": minute(s.minute), "source": s.source, "label": s.label, "n": s.n}
                            for s in self.label_share],
            "confidence": [asdict(b) for b in self.confidence],
            "dead_letters": [asdict(k) for k in self.dead_letters],
            "serving": [asdict(k) for k in self.serving],
            "active_version": self.active_version,
            "consumer_lag": lag,
        }


@dataclass(frozen=True)
class Drift:
    baseline: Baseline
    sources: list[SourceDrift]


def window_start(settings: Settings) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=settings.console.window_minutes)


def live(c: Connection, settings: Settings) -> Live:
    since = window_start(settings)
    act = queries.active_adapter(c, settings.training.adapter_name)
    return Live(settings.console.window_minutes, queries.messages_per_minute(c, since),
                queries.label_share_over_time(c, since), queries.confidence_histogram(c, since),
                queries.dead_letters_by_reason(c, since), queries.adapters_serving(c, since),
                act["version"] if act else None)


def drift_view(c: Connection, settings: Settings) -> Drift:
    cfg = settings.console
    base = baseline(queries.active_adapter(c, settings.training.adapter_name))
    stats = queries.source_stats(c, window_start(settings))
    return Drift(base, drift(stats, base, cfg.drift_share_bound, cfg.drift_confidence_bound))

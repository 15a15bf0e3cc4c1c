"""Every SQL query the console's pages run, as named functions of a Connection and typed parameters,
so a benchmark can measure each one (EXPLAIN ANALYZE) on a large predictions table.

The labelling queue draws from a page sample (TABLESAMPLE SYSTEM) of a few hundred rows, anti-joined
to ``uq_labels_message_labeler`` per row, so the next message costs the same however large the table;
when a sample holds nothing unlabelled it reads ``ix_predictions_margin`` in order instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, text
from sqlalchemy.engine import Connection

from console.selection import MIN_WEIGHT, SAMPLE_ROWS
from schemas.db import ConsoleAuditRow

SEARCH_LIMIT = 100
# Rows per page assumed before the table's first ANALYZE: fewer than a prediction row's usual ~20,
# so the queue's page sample errs large (more rows sorted, never an empty sample).
UNANALYZED_ROWS_PER_PAGE = 10


@dataclass(frozen=True)
class MinuteCount:
    minute: datetime
    n: int


@dataclass(frozen=True)
class LabelShare:
    minute: datetime
    source: str
    label: str
    n: int


@dataclass(frozen=True)
class Bin:
    lower: float
    n: int


@dataclass(frozen=True)
class KindCount:
    kind: str
    n: int


@dataclass(frozen=True)
class SourceStats:
    """One source's predictions in the window: per-label counts and mean confidence."""
    source: str
    labels: dict[str, int]
    mean_confidence: float


@dataclass(frozen=True)
class QueueItem:
    message_id: str
    text: str
    label: str
    confidence: float
    margin: float
    scores: dict[str, float]


@dataclass(frozen=True)
class Found:
    message_id: str
    text: str
    label: str
    confidence: float
    source: str | None
    classified_at: datetime


@dataclass(frozen=True)
class SearchFilter:
    text: str | None = None
    label: str | None = None
    source: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict | None


# Live view ---------------------------------------------------------------------------------------

def messages_per_minute(c: Connection, since: datetime) -> list[MinuteCount]:
    rows = c.execute(text("SELECT date_trunc('minute', classified_at) AS m, count(*) AS n FROM predictions "
                          "WHERE classified_at >= :since GROUP BY m ORDER BY m"), {"since": since})
    return [MinuteCount(r.m, r.n) for r in rows]


def label_share_over_time(c: Connection, since: datetime) -> list[LabelShare]:
    rows = c.execute(text("SELECT date_trunc('minute', classified_at) AS m, coalesce(source, '') AS s, label, "
                          "count(*) AS n FROM predictions WHERE classified_at >= :since "
                          "GROUP BY m, s, label ORDER BY m, s, label"), {"since": since})
    return [LabelShare(r.m, r.s, r.label, r.n) for r in rows]


def confidence_histogram(c: Connection, since: datetime, bins: int = 10) -> list[Bin]:
    rows = c.execute(text("SELECT least(width_bucket(confidence, 0, 1, :bins), :bins) AS b, count(*) AS n "
                          "FROM predictions WHERE classified_at >= :since GROUP BY b ORDER BY b"),
                     {"since": since, "bins": bins})
    counts = {r.b: r.n for r in rows}
    return [Bin((b - 1) / bins, counts.get(b, 0)) for b in range(1, bins + 1)]


def dead_letters_by_reason(c: Connection, since: datetime) -> list[KindCount]:
    rows = c.execute(text("SELECT error_kind, count(*) AS n FROM dead_letters WHERE failed_at >= :since "
                          "GROUP BY error_kind ORDER BY n DESC, error_kind"), {"since": since})
    return [KindCount(r.error_kind, r.n) for r in rows]


def adapters_serving(c: Connection, since: datetime) -> list[KindCount]:
    """The adapter versions that wrote predictions in the window (several while replicas swap)."""
    rows = c.execute(text("SELECT coalesce(adapter_version, '') AS v, count(*) AS n FROM predictions "
                          "WHERE classified_at >= :since GROUP BY v ORDER BY n DESC"), {"since": since})
    return [KindCount(r.v, r.n) for r in rows]


def source_stats(c: Connection, since: datetime) -> list[SourceStats]:
    rows = c.execute(text("SELECT coalesce(source, '') AS s, label, count(*) AS n, sum(confidence) AS conf "
                          "FROM predictions WHERE classified_at >= :since GROUP BY s, label ORDER BY s, label"),
                     {"since": since})
    by_source: dict[str, tuple[dict[str, int], float]] = {}
    for r in rows:
        labels, conf = by_source.get(r.s, ({}, 0.0))
        labels[r.label] = r.n
        by_source[r.s] = (labels, conf + float(r.conf))
    return [SourceStats(s, labels, conf / sum(labels.values())) for s, (labels, conf) in by_source.items()]


# Labelling queue ----------------------------------------------------------------------------------

_QUEUE_COLUMNS = "p.message_id, p.text, p.label, p.confidence, p.margin, p.scores"
_UNLABELLED = ("p.margin IS NOT NULL AND p.message_id <> ALL(:skip) AND NOT EXISTS (SELECT 1 FROM labels l "
               "WHERE l.message_id = p.message_id AND l.labeled_by = :user)")


def _item(row) -> QueueItem | None:
    if row is None:
        return None
    return QueueItem(row.message_id, row.text, row.label, row.confidence, row.margin, dict(row.scores))


def next_by_margin(c: Connection, user: str, skip: Sequence[str] = ()) -> QueueItem | None:
    """The least-margin message ``user`` has not labelled (nor skipped)."""
    row = c.execute(text(f"SELECT {_QUEUE_COLUMNS} FROM predictions p WHERE {_UNLABELLED} "
                         "ORDER BY p.margin, p.message_id LIMIT 1"), {"user": user, "skip": list(skip)}).first()
    return _item(row)


def estimated_predictions(c: Connection) -> int:
    """The table's rows as the planner estimates them, without a count: the last ANALYZE's rows per
    page times the pages the table has now (so rows written since still count), or
    UNANALYZED_ROWS_PER_PAGE per page before the first ANALYZE."""
    row = c.execute(text("SELECT reltuples, relpages, pg_relation_size(oid) / current_setting('block_size')::int "
                         "AS pages FROM pg_class WHERE oid = 'predictions'::regclass")).one()
    analyzed = row.relpages > 0 and row.reltuples >= 0
    return int((row.reltuples / row.relpages if analyzed else UNANALYZED_ROWS_PER_PAGE) * row.pages)


def sample_percent(estimated_rows: int) -> float:
    """The TABLESAMPLE percentage expected to hold about SAMPLE_ROWS rows."""
    if estimated_rows <= SAMPLE_ROWS:
        return 100.0
    return max(100.0 * SAMPLE_ROWS / estimated_rows, 0.0001)


# u in (0, 1), uniform and repeatable: the first 32 bits of the message id's md5 under the draw's salt.
_U = "((('x' || substr(md5(p.message_id || :salt), 1, 8))::bit(32)::bigint + 0.5) / 4294967296.0)"


def _next_in_sample(c: Connection, user: str, percent: float, seed: float, skip: Sequence[str],
                    order: str, params: dict | None = None) -> QueueItem | None:
    """The first message by ``order`` in a page sample (``percent`` of the table) unlabelled by
    ``user``. The sort is over the sample's few hundred rows only; ``seed`` in [0, 1) makes the
    sample and the draw repeatable."""
    row = c.execute(text(f"SELECT {_QUEUE_COLUMNS} FROM predictions p TABLESAMPLE SYSTEM (:pct) "
                         f"REPEATABLE (:seed) WHERE {_UNLABELLED} ORDER BY {order}, p.message_id LIMIT 1"),
                    {"user": user, "skip": list(skip), "pct": percent, "seed": int(seed * 2**31),
                     "salt": str(seed), **(params or {})}).first()
    return _item(row)


def next_random(c: Connection, user: str, percent: float, seed: float,
                skip: Sequence[str] = ()) -> QueueItem | None:
    """A message drawn uniformly from a page sample, unlabelled by ``user``: the random share."""
    return _next_in_sample(c, user, percent, seed, skip, _U)


def next_weighted(c: Connection, user: str, percent: float, seed: float,
                  skip: Sequence[str] = ()) -> QueueItem | None:
    """A message drawn from a page sample with probability proportional to 1 − margin, unlabelled by
    ``user``: the largest of console.selection.key's ln(u) / max(1 − margin, MIN_WEIGHT)."""
    return _next_in_sample(c, user, percent, seed, skip, f"ln({_U}) / GREATEST(1 - p.margin, :min_weight) DESC",
                           {"min_weight": MIN_WEIGHT})


def prediction(c: Connection, message_id: str) -> QueueItem | None:
    row = c.execute(text(f"SELECT {_QUEUE_COLUMNS} FROM predictions p WHERE p.message_id = :id"),
                    {"id": message_id}).first()
    return _item(row)


def write_label(c: Connection, message_id: str, label: str, user: str) -> int:
    """The user's label for a message, replacing their earlier one; a new row (a new id), so the
    trainer counts a correction as a new label. Returns the id."""
    c.execute(text("DELETE FROM labels WHERE message_id = :id AND labeled_by = :user"),
              {"id": message_id, "user": user})
    return c.execute(text("INSERT INTO labels (message_id, label, labeled_by, labeled_at, origin) "
                          "VALUES (:id, :label, :user, now(), 'console') RETURNING id"),
                     {"id": message_id, "label": label, "user": user}).scalar_one()


def undo_last_label(c: Connection, user: str) -> str | None:
    """Delete the user's newest console label; returns its message id (None: nothing to undo)."""
    return c.execute(text("DELETE FROM labels WHERE id = (SELECT id FROM labels WHERE labeled_by = :user "
                          "AND origin = 'console' ORDER BY labeled_at DESC, id DESC LIMIT 1) "
                          "RETURNING message_id"), {"user": user}).scalar()


def labels_since(c: Connection, watermark: int) -> int:
    return c.execute(text("SELECT count(*) FROM labels WHERE id > :w"), {"w": watermark}).scalar_one()


def labels_by(c: Connection, user: str) -> int:
    return c.execute(text("SELECT count(*) FROM labels WHERE labeled_by = :user"), {"user": user}).scalar_one()


# Adapters ---------------------------------------------------------------------------------------

def adapters(c: Connection, name: str) -> list[dict]:
    rows = c.execute(text("SELECT * FROM adapters WHERE name = :name ORDER BY id DESC"), {"name": name})
    return [dict(r) for r in rows.mappings()]


def adapter(c: Connection, version: str) -> dict | None:
    row = c.execute(text("SELECT * FROM adapters WHERE version = :v"), {"v": version}).mappings().first()
    return dict(row) if row else None


def active_adapter(c: Connection, name: str) -> dict | None:
    row = c.execute(text("SELECT * FROM adapters WHERE name = :name AND status = 'active'"),
                    {"name": name}).mappings().first()
    return dict(row) if row else None


def write_audit(c: Connection, actor: str, action: str, target: str | None, detail: dict | None = None) -> None:
    c.execute(ConsoleAuditRow.__table__.insert().values(at=func.now(), actor=actor, action=action, target=target,
                                                         detail=detail))


def audit_entries(c: Connection, target: str | None = None, limit: int = 50) -> list[AuditEntry]:
    where = "WHERE target = :target" if target else ""
    rows = c.execute(text(f"SELECT at, actor, action, target, detail FROM console_audit {where} "
                          "ORDER BY at DESC, id DESC LIMIT :limit"), {"target": target, "limit": limit})
    return [AuditEntry(r.at, r.actor, r.action, r.target, r.detail) for r in rows]


# Search -----------------------------------------------------------------------------------------

def _like_pattern(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(c: Connection, f: SearchFilter, limit: int = SEARCH_LIMIT) -> list[Found]:
    """Newest first. The text match is ILIKE, which the pg_trgm index serves where it exists."""
    clauses, params = [], {"limit": limit}
    for cond, key, value in [
        ("p.text ILIKE :text", "text", _like_pattern(f.text) if f.text else None),
        ("p.label = :label", "label", f.label),
        ("p.source = :source", "source", f.source),
        ("p.confidence >= :min_conf", "min_conf", f.min_confidence),
        ("p.confidence <= :max_conf", "max_conf", f.max_confidence),
        ("p.classified_at >= :since", "since", f.since),
        ("p.classified_at < :until", "until", f.until),
    ]:
        if value is not None:
            clauses.append(cond)
            params[key] = value
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = c.execute(text("SELECT p.message_id, p.text, p.label, p.confidence, p.source, p.classified_at "
                          f"FROM predictions p {where} ORDER BY p.classified_at DESC LIMIT :limit"), params)
    return [Found(r.message_id, r.text, r.label, r.confidence, r.source, r.classified_at) for r in rows]


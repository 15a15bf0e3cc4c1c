"""Labels in: file import and the labels Kafka topic, both upserting into the ``labels`` table.

A label row is keyed by (message_id, labeled_by): a labeler relabelling a message replaces their
earlier label. Rows without text must name a message the daemon already classified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from schemas.db import DeadLetterRow, LabelRow, PredictionRow, dialect_insert
from training.readers import Example, Rejected, read_labeled

log = structlog.get_logger("training.labels")
L = LabelRow.__table__
P = PredictionRow.__table__
CHUNK = 1000


@dataclass
class ImportResult:
    written: int = 0
    rejected: list[Rejected] = field(default_factory=list)


def _upsert(c: Connection, rows: list[dict]) -> None:
    stmt = dialect_insert(c.dialect.name)(L).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["message_id", "labeled_by"],
        set_={"label": stmt.excluded.label, "text": stmt.excluded.text, "origin": stmt.excluded.origin,
              "labeled_at": func.now()},
    )
    c.execute(stmt)


def _known_ids(c: Connection, ids: Iterable[str]) -> set[str]:
    ids = list(set(ids))
    found: set[str] = set()
    for s in range(0, len(ids), CHUNK):
        found |= set(c.execute(select(P.c.message_id).where(P.c.message_id.in_(ids[s:s + CHUNK]))).scalars())
    return found


def write_labels(engine: Engine, items: Sequence[Example | Rejected], *, labeled_by: str, origin: str,
                 dead_letter: Callable[[Rejected], dict] | None = None) -> ImportResult:
    """Upsert the good rows; a row without text whose message id is unknown is rejected. With
    ``dead_letter`` (a rejected row to a ``dead_letters`` row), the rejected rows are kept there, in
    the same transaction as the labels."""
    res = ImportResult(rejected=[r for r in items if isinstance(r, Rejected)])
    good = [e for e in items if isinstance(e, Example)]
    with engine.begin() as c:
        known = _known_ids(c, [e.message_id for e in good if e.text is None])
        # Within one batch the last row for a (message, labeler) wins, as a later upsert would.
        rows: dict[tuple[str, str], dict] = {}
        for e in good:
            if e.text is None and e.message_id not in known:
                res.rejected.append(Rejected(e.line, f"unknown message id {e.message_id!r} and no text",
                                             e.message_id))
                continue
            by = e.labeled_by or labeled_by
            rows[(e.message_id, by)] = {"message_id": e.message_id, "text": e.text, "label": e.label,
                                        "labeled_by": by, "origin": origin}
        batch = list(rows.values())
        for s in range(0, len(batch), CHUNK):
            _upsert(c, batch[s:s + CHUNK])
        res.written = len(batch)
        if dead_letter and res.rejected:
            # A replay after a crash finds the same positions and inserts nothing new.
            c.execute(dialect_insert(c.dialect.name)(DeadLetterRow).on_conflict_do_nothing(
                index_elements=["topic", "partition", "offset"]), [dead_letter(r) for r in res.rejected])
    res.rejected.sort(key=lambda r: r.line)
    return res


def import_file(engine: Engine, path: Path, labels: Sequence[str], *, labeled_by: str) -> ImportResult:
    res = write_labels(engine, list(read_labeled(path, labels)), labeled_by=labeled_by, origin="import")
    log.info("labels.imported", file=str(path), written=res.written, rejected=len(res.rejected))
    return res


def count_since(engine: Engine, watermark: int) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(L).where(L.c.id > watermark)).scalar())


def ids_since(engine: Engine, watermark: int) -> set[str]:
    """Message ids labelled after ``watermark``."""
    with engine.connect() as c:
        return set(c.execute(select(L.c.message_id).where(L.c.id > watermark)).scalars())


def load_examples(engine: Engine, labels: Sequence[str]) -> tuple[list[Example], int]:
    """Every usable label (text from the row, else from predictions), oldest first by labeled_at;
    and the watermark (highest labels.id read)."""
    allowed = set(labels)
    q = (select(L.c.id, L.c.message_id, func.coalesce(L.c.text, P.c.text).label("text"), L.c.label,
                L.c.labeled_by)
         .select_from(L.outerjoin(P, P.c.message_id == L.c.message_id))
         .order_by(L.c.labeled_at, L.c.id))
    out, wm, skipped = [], 0, 0
    with engine.connect() as c:
        for r in c.execute(q):
            wm = max(wm, r.id)
            if not r.text or r.label not in allowed:
                skipped += 1  # a label written by SQL can name a class this model does not have
                continue
            out.append(Example(r.message_id, r.text, r.label, r.labeled_by))
    if skipped:
        log.warning("labels.skipped", rows=skipped, why="no text or label not in training.labels")
    return out, wm

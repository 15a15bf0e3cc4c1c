"""The console's page queries on a big database: EXPLAIN (ANALYZE, BUFFERS) of exactly the SQL
each ``console.queries`` function runs.

A database of its own (dropped at the end unless ``--keep``), migrated to head, filled in SQL with
generate_series: ``--rows`` predictions (default 10 million) in arrival order over 30 days from
~20 sources (tweet sources with three labels, review sources with two; scores summing to 1, margin
consistent with them; text from a few hundred SST-2 sentences with a suffix), ~100k labels from
several labellers who labelled the least-margin messages (the worst case for the queue's
fallback, ``next_by_margin``), ~100k dead letters and ~50 adapter versions,
then VACUUM ANALYZE (the server's autovacuum may be off). The predictions' secondary indexes are
dropped for the fill and rebuilt from their own definitions, each build timed: what a migration
adding one costs on a table this size.

Each public function of ``console.queries`` that takes a Connection is called once (warm-up) with
realistic parameters; a ``before_cursor_execute`` listener captures every statement and its
parameters, and each statement is run under EXPLAIN three times (``--runs``): the table gives the
plan's top nodes, the indexes it used, the rows it returned and the median execution time, and flags
a sequential scan of predictions, labels or dead_letters, or a median over 100 ms. Everything runs in a
transaction that is rolled back, so a function that writes leaves the data as it was.

The 10M fill takes about 20 minutes on one core: ``--fill-only`` keeps its database and
``--database NAME`` measures it again (after a change to the queries, or ``--module`` with a
proposed rewrite) without filling.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import inspect
import json
import statistics
import sys
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Connection, Engine, make_url

from benchmarks import common as c
from console.selection import SAMPLE_ROWS
from schemas.db import describe_error, upgrade
from schemas.errors import SentistreamError
from schemas.settings import ConsoleSettings

DEFAULT_ROWS = 10_000_000
SLOW_MS = 100.0
BIG_TABLES = ("predictions", "labels", "dead_letters")
N_SOURCES = 20
N_THREE_CLASS = 8  # sources 0..7 are tweet streams with a neutral class
VERSIONS_PER_ADAPTER = 25
LABELLERS = 8
TEXTS = 400
RESULTS = c.REPO / "benchmarks" / "RESULTS.md"
PROGRAM = ".venv/bin/python -m benchmarks.console_queries"


# Sizes and context
@dataclass(frozen=True)
class Sizes:
    rows: int
    labels_per_step: int  # labeller k works the k * labels_per_step least-margin messages
    dead_letters: int
    imported_labels: int

    @classmethod
    def for_rows(cls, rows: int) -> Sizes:
        # ~100k labels and ~100k dead letters at 10M rows; proportionally fewer on a smoke run.
        scale = min(1.0, rows / DEFAULT_ROWS * 20)
        return cls(rows=rows, labels_per_step=max(5, int(2000 * scale)),
                   dead_letters=max(50, int(100_000 * scale)), imported_labels=max(20, int(20_000 * scale)))


@dataclass(frozen=True)
class Context:
    """What realistic parameters are made of: the generated data's own names, times and sizes."""

    now: datetime  # the end of the generated data
    window: timedelta  # the console's default recent window
    rows: int
    source: str  # the busiest source
    labeller: str  # the one with the most labels: the queue's anti-join is longest for them
    message_id: str
    watermark: int  # the active adapter's label watermark
    adapter_name: str
    adapter_version: str


@dataclass
class Timings:
    phases: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.phases[name] = time.perf_counter() - t0


@dataclass(frozen=True)
class Statement:
    sql: str
    params: dict | tuple | None


@dataclass(frozen=True)
class Measured:
    query: str  # function name, with "#k" where it runs more than one statement
    call: str  # the parameters it was called with
    top: str  # the plan's top nodes, down to the first scan
    indexes: tuple[str, ...]
    seq_scans: tuple[str, ...]  # big tables read by a sequential scan
    rows: int
    runs_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return float(statistics.median(self.runs_ms))

    @property
    def flags(self) -> list[str]:
        out = [f"Seq Scan on {t}" for t in self.seq_scans]
        return out + ([f"> {SLOW_MS:.0f} ms"] if self.median_ms > SLOW_MS else [])


class BenchError(SentistreamError):
    """A failure with one line that says what to fix."""


# The database
def admin_engine() -> Engine:
    return create_engine(c.PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@contextmanager
def own_database(keep: bool) -> Iterator[str]:
    admin = admin_engine()
    name = f"sentistream_console_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except exc.OperationalError as e:
        raise BenchError(f"cannot reach Postgres at {make_url(c.PG_ADMIN_URL).render_as_string()} "
                         f"({describe_error(e)}): start it or set SENTISTREAM_BENCH_PG") from None
    url = make_url(c.PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        if keep:
            print(f"kept database {name}", file=sys.stderr)
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def columns(conn: Connection, table: str) -> set[str]:
    return set(conn.execute(text("select column_name from information_schema.columns where table_name = :t"),
                            {"t": table}).scalars())


# The fill: predictions
# One row per g in arrival order; b draws the random numbers once per row, s derives the scores.
PREDICTION_BASE = """
SELECT g, src, src < :three AS three, r_label, r_conf, r_second, r_misc,
       CAST(:end_at AS timestamptz) - interval '30 days' + ((g - 1)::float8 / :n) * interval '30 days'
         AS classified_at
FROM (SELECT g, floor(:sources * power(random(), 1.6))::int AS src, random() AS r_label, random() AS r_conf,
             random() AS r_second, random() AS r_misc
      FROM generate_series(1, :n) AS g) AS b
"""
# top: the predicted class; conf its score; second the runner-up's score (two-class: 1 - conf).
PREDICTION_SCORES = f"""
SELECT *, CASE WHEN three THEN 1 - conf - second ELSE 0 END AS third,
       CASE WHEN three THEN (top + 1 + (r_misc < 0.5)::int) % 3 ELSE 1 - top END AS runner_up
FROM (SELECT *, CASE WHEN three THEN least(conf, (1 - conf) * (0.5 + 0.5 * r_second)) ELSE 1 - conf END AS second
      FROM (SELECT *,
                   CASE WHEN three THEN (CASE WHEN r_label < 0.3 THEN 0 WHEN r_label < 0.75 THEN 1 ELSE 2 END)
                        ELSE (r_label < 0.45 + 0.02 * (src - :three))::int END AS top,
                   CASE WHEN three THEN 1.0 / 3 + 2.0 / 3 * (1 - power(r_conf, 2.5))
                        ELSE 1 - 0.5 * power(r_conf, 4) END AS conf
            FROM ({PREDICTION_BASE}) AS base) AS t) AS s
"""


def score_of(k: int) -> str:
    return f"CASE WHEN top = {k} THEN conf WHEN runner_up = {k} THEN second ELSE third END"


PREDICTION_VALUES = {
    "message_id": "'msg-' || g",
    "text": "(CAST(:texts AS text[]))[1 + g % :n_texts] || ' #' || g",
    "label": "CASE WHEN three THEN (ARRAY['negative', 'neutral', 'positive'])[top + 1] "
             "ELSE (ARRAY['negative', 'positive'])[top + 1] END",
    "label_id": "top",
    "scores": "CASE WHEN three THEN jsonb_build_object('negative', {0}, 'neutral', {1}, 'positive', {2}) "
              "ELSE jsonb_build_object('negative', {0}, 'positive', {1}) END".format(*map(score_of, range(3))),
    "confidence": "conf",
    "margin": "conf - second",
    "model_version": "'minilm-lora-sst2'",
    "adapter_version": "CASE WHEN three THEN 'minilm-tweeteval' ELSE 'minilm-sst2' END || '-v' || "
                       f"lpad((1 + floor({VERSIONS_PER_ADAPTER} * (g - 1)::float8 / :n))::int::text, 2, '0')",
    # ~1 % of messages come without a source.
    "source": "CASE WHEN r_misc > 0.99 THEN NULL WHEN three THEN 'tweets-' || lpad(src::text, 2, '0') "
              "ELSE 'reviews-' || lpad(src::text, 2, '0') END",
    "lang": "'en'",
    "lang_supported": "true",
    "author": "'author-' || (g::bigint * 7919 % 50000)",
    "message_created_at": "classified_at - interval '1 second' * (1 + 600 * r_misc)",
    "topic": "CASE WHEN three THEN 'tweets' ELSE 'reviews' END",
    "partition": "g % 6",
    "offset": "g / 6",
    "latency_ms": "20 + 400 * power(r_second, 3)",
    "received_at": "classified_at - interval '1 millisecond' * (20 + 400 * power(r_second, 3))",
    "classified_at": "classified_at",
    "written_at": "classified_at + interval '30 milliseconds'",
}


def required_columns(conn: Connection, table: str) -> set[str]:
    return set(conn.execute(text("select column_name from information_schema.columns where table_name = :t "
                                 "and is_nullable = 'NO' and column_default is null"), {"t": table}).scalars())


def fill_predictions(conn: Connection, sz: Sizes, end_at: datetime) -> None:
    have = columns(conn, "predictions")
    unknown = required_columns(conn, "predictions") - set(PREDICTION_VALUES)
    if unknown:
        raise BenchError(f"predictions has required columns this benchmark cannot fill ({', '.join(sorted(unknown))}):"
                         " add them to PREDICTION_VALUES in benchmarks/console_queries.py")
    cols = [col for col in PREDICTION_VALUES if col in have]
    sql = (f"INSERT INTO predictions ({', '.join(map(quote, cols))}) "
           f"SELECT {', '.join(PREDICTION_VALUES[col] for col in cols)} FROM ({PREDICTION_SCORES}) AS p")
    texts = sentences()
    conn.execute(text("select setseed(0.42)"))
    conn.execute(text(sql), {"n": sz.rows, "sources": N_SOURCES, "three": N_THREE_CLASS, "end_at": end_at,
                             "texts": texts, "n_texts": len(texts)})


def sentences() -> list[str]:
    """SST-2 dev sentences (whole reviews' sentences, unlike train's phrases); the built-in few when
    the data is absent."""
    path = c.DATA_DIR / "sst2" / "dev.tsv"
    if not path.is_file():
        return list(c.FALLBACK_TEXTS)
    with path.open(newline="", encoding="utf-8") as f:
        rows = [r["sentence"].strip() for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return [s for s in rows if s][:TEXTS]


def quote(col: str) -> str:
    return f'"{col}"'


@dataclass(frozen=True)
class IndexDef:
    name: str
    sql: str


def secondary_indexes(conn: Connection, table: str) -> list[IndexDef]:
    """Indexes that back no constraint (the primary key and unique constraints stay through the fill)."""
    rows = conn.execute(text(
        "select i.indexname, i.indexdef from pg_indexes i where i.tablename = :t and not exists "
        "(select 1 from pg_constraint k where k.conname = i.indexname) order by i.indexname"), {"t": table})
    return [IndexDef(name, sql) for name, sql in rows]


# The fill: labels, dead letters, adapters
def fill_labels(conn: Connection, sz: Sizes, end_at: datetime, texts: list[str]) -> None:
    """Labeller k labelled the k * step least-margin messages (the queue), one in ten of them a random
    message instead, plus an imported dataset of labels on messages not in predictions."""
    for k in range(1, LABELLERS + 1):
        queue, drawn = k * sz.labels_per_step * 9 // 10, k * sz.labels_per_step // 10
        who = {"who": f"labeller-{k:02d}", "end_at": end_at}
        conn.execute(text(
            "INSERT INTO labels (message_id, label, labeled_by, labeled_at, origin) "
            "SELECT message_id, CASE WHEN random() < 0.8 THEN label ELSE 'negative' END, :who, "
            "  :end_at - interval '30 days' * random(), 'console' "
            "FROM (SELECT message_id, label FROM predictions ORDER BY margin, message_id LIMIT :queue) AS q"),
            who | {"queue": queue})
        conn.execute(text(
            "INSERT INTO labels (message_id, label, labeled_by, labeled_at, origin) "
            "SELECT 'msg-' || (1 + floor(random() * :n))::bigint, "
            "  (ARRAY['negative', 'positive'])[1 + (random() < 0.5)::int], :who, "
            "  :end_at - interval '30 days' * random(), 'console' FROM generate_series(1, :drawn) "
            "ON CONFLICT (message_id, labeled_by) DO NOTHING"), who | {"drawn": drawn, "n": sz.rows})
    conn.execute(text(
        "INSERT INTO labels (message_id, text, label, labeled_by, labeled_at, origin) "
        "SELECT 'sst2-dev-' || g, (CAST(:texts AS text[]))[1 + g % :n_texts], "
        "  (ARRAY['negative', 'positive'])[1 + g % 2], "
        "  'import', :end_at - interval '30 days', 'import' FROM generate_series(1, :n) AS g"),
        {"n": sz.imported_labels, "end_at": end_at, "texts": texts, "n_texts": len(texts)})


DEAD_KINDS = ["invalid_json", "empty_text", "oversized_text", "schema_violation", "missing_text",
              "undecodable_bytes", "classification_failed"]


def fill_dead_letters(conn: Connection, sz: Sizes, end_at: datetime) -> None:
    # Skewed: most dead letters are malformed JSON or empty texts.
    conn.execute(text(
        "INSERT INTO dead_letters (topic, partition, \"offset\", message_id, key, original, error_kind, "
        "  error_text, failed_at) "
        "SELECT CASE WHEN g % 3 = 0 THEN 'tweets' ELSE 'reviews' END, g % 6, 1000000000 + g, "
        "  CASE WHEN g % 4 = 0 THEN NULL ELSE 'dead-' || g END, NULL, convert_to('{\"id\": \"dead-' || g || '\"', "
        "  'UTF8'), kind, kind || ': rejected by the benchmark', "
        "  :end_at - interval '30 days' + ((g - 1)::float8 / :n) * interval '30 days' "
        "FROM (SELECT g, (CAST(:kinds AS text[]))[1 + floor(:k * power(random(), 2))::int] AS kind "
        "      FROM generate_series(1, :n) AS g) AS d"),
        {"n": sz.dead_letters, "end_at": end_at, "kinds": DEAD_KINDS, "k": len(DEAD_KINDS)})


def fill_adapters(conn: Connection, end_at: datetime) -> None:
    """Per adapter name, the versions that served in turn (the last one active) and a rejected
    candidate between every fifth pair; each trained on the labels of its time (the watermark)."""
    conn.execute(text(
        "INSERT INTO adapters (name, version, kind, base_model, artifact_path, sha256, metrics, status, reasons, "
        "  parent_version, label_watermark, created_at, status_changed_at) "
        "SELECT name, version, 'lora', 'sentence-transformers/all-MiniLM-L6-v2', 'adapters/' || version, "
        "  md5(version) || md5(name), jsonb_build_object('gold', jsonb_build_object('macro_f1', 0.80 + v * 0.002, "
        "  'accuracy', 0.84 + v * 0.002), 'train_label_counts', CASE WHEN name = 'minilm-tweeteval' THEN "
        "  jsonb_build_object('negative', 300 * v, 'neutral', 450 * v, 'positive', 250 * v) ELSE "
        "  jsonb_build_object('negative', 480 * v, 'positive', 520 * v) END), "
        "  CASE WHEN rejected THEN 'rejected' WHEN v = :versions THEN 'active' ELSE 'retired' END, "
        "  CASE WHEN rejected THEN '[\"gold macro_f1 below the active adapter\"]'::jsonb END, "
        "  CASE WHEN v > 1 THEN name || '-v' || lpad((v - 1)::text, 2, '0') END, "
        "  (SELECT coalesce(max(id), 0) FROM labels) * v / (:versions + 1), created_at, created_at "
        "FROM (SELECT name, v, rejected, name || '-v' || lpad(v::text, 2, '0') || CASE WHEN rejected THEN '-r' "
        "        ELSE '' END AS version, "
        "        :end_at - interval '30 days' + ((v - 1)::float8 / :versions) * interval '30 days' "
        "          + CASE WHEN rejected THEN interval '2 hours' ELSE interval '0' END AS created_at "
        "      FROM unnest(ARRAY['minilm-sst2', 'minilm-tweeteval']) AS name, generate_series(1, :versions) AS v, "
        "        unnest(ARRAY[false, true]) AS rejected WHERE NOT rejected OR v % 5 = 0) AS a"),
        {"versions": VERSIONS_PER_ADAPTER, "end_at": end_at})


def fill(url: str, sz: Sizes, end_at: datetime, timings: Timings) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            # The fill is one core's work on a shared machine.
            conn.execute(text("SET LOCAL max_parallel_maintenance_workers = 0"))
            conn.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
            indexes = secondary_indexes(conn, "predictions")
            for ix in indexes:
                conn.execute(text(f'DROP INDEX "{ix.name}"'))
            with timings.phase("predictions insert"):
                fill_predictions(conn, sz, end_at)
            for ix in indexes:
                with timings.phase(f"index {ix.name}"):
                    conn.execute(text(ix.sql))
            with timings.phase("labels, dead letters, adapters"):
                fill_labels(conn, sz, end_at, sentences())
                fill_dead_letters(conn, sz, end_at)
                fill_adapters(conn, end_at)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn, \
                timings.phase("vacuum analyze"):
            for table in ("predictions", "labels", "dead_letters", "adapters"):
                conn.execute(text(f"VACUUM (ANALYZE) {table}"))
    finally:
        engine.dispose()


# Parameters
def context(conn: Connection, end_at: datetime, rows: int) -> Context:
    source = conn.execute(text("select source from predictions where source is not null group by 1 "
                               "order by count(*) desc limit 1")).scalar_one()
    labeller = conn.execute(text("select labeled_by from labels where origin = 'console' group by 1 "
                                 "order by count(*) desc limit 1")).scalar_one()
    name, version, watermark = conn.execute(text(
        "select name, version, label_watermark from adapters where status = 'active' order by name")).first()
    return Context(now=end_at, window=timedelta(minutes=ConsoleSettings().window_minutes), rows=rows,
                   source=source, labeller=labeller, message_id=f"msg-{rows // 2}", watermark=watermark,
                   adapter_name=name, adapter_version=version)


# Search terms by share of the rows (400 SST-2 dev sentences repeated): 3.5 %, 0.5 %, 0.25 %, none.
SEARCH_WORDS = ("funny", "charming", "unflinchingly", "zyzzyva")


def guesses(name: str, hint, ctx: Context) -> list:
    """Realistic values for a parameter, from its name first and its type second; the first is the
    one a required parameter gets, the others are further calls (a filter's variants)."""
    n = name.lower()
    types = set(typing.get_args(hint)) | {hint}
    if datetime in types:
        return [ctx.now] if any(w in n for w in ("until", "end", "before", "to")) else [ctx.now - ctx.window]
    by_name = {
        "text": list(SEARCH_WORDS), "query": list(SEARCH_WORDS), "user": [ctx.labeller], "labeller": [ctx.labeller],
        "actor": ["admin"], "source": [ctx.source], "label": ["positive"], "message_id": [ctx.message_id],
        "name": [ctx.adapter_name], "version": [ctx.adapter_version], "target": [ctx.adapter_version],
        "action": ["promote"], "watermark": [ctx.watermark], "seed": [0.5],
        "percent": [100.0 * SAMPLE_ROWS / ctx.rows],
        # A low-confidence slice: what an analyst hunting mistakes asks for.
        "min_confidence": [0.5], "max_confidence": [0.6],
    }
    return by_name.get(n, [])


def is_filter(hint) -> bool:
    """An optional parameter worth a call of its own: a value that narrows what a page shows, not a
    size or a list to skip."""
    types = set(typing.get_args(hint)) | {hint}
    return bool(types & {str, float, datetime})


def dataclass_variants(cls: type, ctx: Context) -> list:
    """The filter with nothing set, with each field set alone (each of its values), and with every
    field set."""
    hints = typing.get_type_hints(cls)
    per_field = {f.name: guesses(f.name, hints[f.name], ctx) for f in dataclasses.fields(cls)}
    alone = [cls(**{k: v}) for k, values in per_field.items() for v in values]
    every = {k: values[0] for k, values in per_field.items() if values}
    return [cls(), *alone, cls(**every)]


def call_variants(fn: Callable, ctx: Context) -> list[dict]:
    """The keyword arguments to call ``fn`` with: required parameters from ``guesses``, optional ones
    at their defaults (the page's default view), then one call per value of each optional filter."""
    hints = typing.get_type_hints(fn)
    base: dict = {}
    variants: list[dict] = []
    for name, p in list(inspect.signature(fn).parameters.items())[1:]:
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint):
            options = dataclass_variants(hint, ctx)
            base[name] = options[0]
            variants += [{name: o} for o in options[1:]]
            continue
        values = guesses(name, hint, ctx)
        if p.default is inspect.Parameter.empty:
            if not values:
                raise BenchError(f"{fn.__module__}.{fn.__name__}: no value known for parameter {name!r}: add "
                                 "one to guesses() in benchmarks/console_queries.py")
            base[name] = values[0]
        elif is_filter(hint):
            variants += [{name: v} for v in values]
    return [base] + [base | v for v in variants]


# Capture and EXPLAIN
def query_functions(module_name: str) -> list[Callable]:
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BenchError(f"cannot import {module_name} ({e}): pass --module a module of query functions") from None
    out = []
    for name, fn in inspect.getmembers(module, inspect.isfunction):
        if name.startswith("_") or fn.__module__ != module.__name__:
            continue
        params = list(inspect.signature(fn).parameters.values())
        hint = typing.get_type_hints(fn).get(params[0].name) if params else None
        if hint is Connection:
            out.append(fn)
    if not out:
        raise BenchError(f"{module_name} has no public function taking a Connection first")
    return out


def capture(conn: Connection, fn: Callable, kwargs: dict) -> list[Statement]:
    """Run ``fn`` once (also the warm-up) in a transaction rolled back; the statements it executed."""
    seen: list[Statement] = []

    def listener(_conn, _cursor, statement, parameters, _context, executemany):
        if not executemany:
            seen.append(Statement(statement, parameters))

    event.listen(conn, "before_cursor_execute", listener)
    tx = conn.begin()
    try:
        fn(conn, **kwargs)
    finally:
        tx.rollback()
        event.remove(conn, "before_cursor_execute", listener)
    return seen


def explain(conn: Connection, stmt: Statement) -> dict:
    tx = conn.begin()
    try:
        raw = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + stmt.sql, stmt.params or None)
        return raw.scalar_one()[0]
    finally:
        tx.rollback()


def walk(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("Plans", []):
        yield from walk(child)


def describe(node: dict) -> str:
    kind = node["Node Type"]
    if node.get("Strategy") and kind in ("Aggregate", "SetOp"):
        kind = f"{node['Strategy']} {kind}"
    if node.get("Join Type") and node["Join Type"] != "Inner":
        kind = f"{kind} {node['Join Type']}"
    return f"{kind} on {node['Relation Name']}" if node.get("Relation Name") else kind


def plan_path(node: dict, depth: int = 3) -> str:
    """The top node and its first children, down to the first scan: what the plan does at a glance."""
    path = [describe(node)]
    while node.get("Plans") and len(path) < depth and "Relation Name" not in node:
        node = node["Plans"][0]
        path.append(describe(node))
    return " > ".join(path)


def measure(conn: Connection, name: str, call: str, stmt: Statement, runs: int) -> Measured:
    plans = [explain(conn, stmt) for _ in range(runs)]
    last = plans[-1]["Plan"]
    nodes = list(walk(last))
    indexes = tuple(dict.fromkeys(n["Index Name"] for n in nodes if n.get("Index Name")))
    seq = tuple(dict.fromkeys(n["Relation Name"] for n in nodes
                              if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in BIG_TABLES))
    return Measured(query=name, call=call, top=plan_path(last), indexes=indexes, seq_scans=seq,
                    rows=int(last["Actual Rows"]), runs_ms=tuple(p["Execution Time"] for p in plans))


def show(kwargs: dict, ctx: Context) -> str:
    """The call's parameters as the table shows them; times relative to the fill's end."""
    def one(v) -> str:
        if isinstance(v, datetime):
            return "end" if v == ctx.now else f"end - {(ctx.now - v).total_seconds() / 60:.0f} min"
        if dataclasses.is_dataclass(v):
            set_ = {f.name: getattr(v, f.name) for f in dataclasses.fields(v) if getattr(v, f.name) != f.default}
            return f"{type(v).__name__}({show(set_, ctx)})"
        return f"{v:g}" if isinstance(v, float) else repr(v)

    return ", ".join(f"{k}={one(v)}" for k, v in kwargs.items())


def measure_all(url: str, ctx: Context, runs: int, module_name: str) -> list[Measured]:
    engine = create_engine(url)
    out = []
    try:
        with engine.connect() as conn:
            for fn in query_functions(module_name):
                for kwargs in call_variants(fn, ctx):
                    stmts = capture(conn, fn, kwargs)
                    for i, stmt in enumerate(stmts, 1):
                        name = fn.__name__ + (f" #{i}" if len(stmts) > 1 else "")
                        out.append(measure(conn, name, show(kwargs, ctx), stmt, runs))
    finally:
        engine.dispose()
    return out


# Reporting
HEADERS = ["query", "called with", "plan (top nodes)", "indexes used", "rows", "median ms", "runs ms", "flags"]


def results_table(measured: list[Measured]) -> str:
    rows = [[m.query, m.call, m.top, ", ".join(m.indexes) or "–", f"{m.rows:,}", f"{m.median_ms:.2f}",
             c.fmt_runs(m.runs_ms, 2), "; ".join(m.flags) or "–"] for m in measured]
    return c.table(HEADERS, rows)


def sizes_table(url: str) -> tuple[str, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(text(
                "select relname, n_live_tup, pg_relation_size(relid), pg_indexes_size(relid) "
                "from pg_stat_user_tables where relname in ('predictions', 'labels', 'dead_letters', 'adapters') "
                "order by pg_total_relation_size(relid) desc")).all()
            counts = {t: conn.execute(text(f"select count(*) from {t}")).scalar_one() for t, *_ in tables}
            indexes = conn.execute(text(
                "select relname, indexrelname, pg_relation_size(indexrelid) from pg_stat_user_indexes "
                "where relname in ('predictions', 'labels') order by 1, 3 desc")).all()
    finally:
        engine.dispose()
    t1 = c.table(["table", "rows", "table size", "indexes size"],
                 [[t, f"{counts[t]:,}", mib(ts), mib(ix)] for t, _, ts, ix in tables])
    t2 = c.table(["table", "index", "size"], [[t, ix, mib(s)] for t, ix, s in indexes])
    return t1, t2


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def section(cmd: str, machine: str, rec: FillRecord, measured: list[Measured], sizes: tuple[str, str],
            phases: str, commit: str) -> str:
    flagged = [m for m in measured if m.flags]
    commands = list(dict.fromkeys([rec.command, cmd]))  # a --database run measures an earlier fill
    commands_text = ", then ".join(f"`{' '.join(filter(None, [PROGRAM, a]))}`" for a in commands)
    verdict = (f"No statement read {', '.join(BIG_TABLES)} by a sequential scan or took over {SLOW_MS:.0f} ms."
               if not flagged else
               "Flagged: " + "; ".join(f"`{m.query}` ({', '.join(m.flags)})" for m in flagged) + ".")
    return "\n".join([
        f"\n## Console: page queries on {rec.rows:,} predictions (EXPLAIN ANALYZE)\n",
        f"{date.today().isoformat()}, tree {commit}.\n",
        f"Command{'s' if len(commands) > 1 else ''}: {commands_text}. Machine: {machine}. "
        f"Data ends at {rec.end_at.isoformat()} ('end' below).\n",
        "Each row: one statement a `console.queries` function ran (captured by a `before_cursor_execute` "
        "listener) when called as its page calls it: required parameters from the data (`guesses`; `since` = "
        "end − `console.window_minutes`), optional ones at their defaults, then once more per value of each "
        "optional filter (a SearchFilter's fields alone, then all together). Each statement ran under EXPLAIN "
        f"(ANALYZE, BUFFERS) {len(measured[0].runs_ms)} times after a warm-up call, in a transaction rolled back; "
        "the median "
        "execution time (planning excluded). Flags: a sequential scan of predictions, labels or "
        f"dead_letters, or a median over {SLOW_MS:.0f} ms.\n",
        results_table(measured), "", verdict, "", sizes[0], "", sizes[1], "", phases, "",
    ])


def git_commit() -> str:
    import subprocess

    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=c.REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=c.REPO, capture_output=True, text=True)
    return out.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


@dataclass(frozen=True)
class FillRecord:
    """What a fill left in its database, so a later ``--database`` run can report it."""

    rows: int
    end_at: datetime
    phases: dict[str, float]
    command: str  # the fill's own arguments


def record_fill(url: str, rec: FillRecord) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE console_bench_fill (rows bigint, end_at timestamptz, phases json, "
                          "command text)"))
        conn.execute(text("INSERT INTO console_bench_fill VALUES (:rows, :end_at, CAST(:phases AS json), :command)"),
                     {"rows": rec.rows, "end_at": rec.end_at, "phases": json.dumps(rec.phases),
                      "command": rec.command})
    engine.dispose()


def read_fill(url: str) -> FillRecord:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT rows, end_at, phases, command FROM console_bench_fill")).one()
    except exc.ProgrammingError:
        raise BenchError("that database was not filled by this benchmark: pass one that "
                         "'--fill-only' kept") from None
    except exc.OperationalError as e:
        raise BenchError(f"cannot open that database ({describe_error(e)}): pass the name a "
                         "'--fill-only' run printed") from None
    finally:
        engine.dispose()
    return FillRecord(rows=row[0], end_at=row[1], phases=row[2], command=row[3])


def report(url: str, args: argparse.Namespace, cmd: str, machine: str) -> int:
    rec = read_fill(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        ctx = context(conn, rec.end_at, rec.rows)
    engine.dispose()
    measured = measure_all(url, ctx, args.runs, args.module)
    sizes = sizes_table(url)
    phases = c.table(["fill phase", "seconds"], [[k, f"{v:.1f}"] for k, v in rec.phases.items()])
    print("\n\n".join([results_table(measured), *sizes, phases]))
    if args.results is not None:
        with args.results.open("a", encoding="utf-8") as f:
            f.write(section(cmd, machine, rec, measured, sizes, phases, git_commit()))
    return 0


def run(args: argparse.Namespace, cmd: str) -> int:
    machine = c.machine()
    if args.database:
        return report(make_url(c.PG_ADMIN_URL).set(database=args.database).render_as_string(hide_password=False),
                      args, cmd, machine)
    if not args.fill_only:
        query_functions(args.module)  # fails now, not after the fill
    sz = Sizes.for_rows(args.rows)
    end_at = datetime.now(timezone.utc).replace(microsecond=0)
    timings = Timings()
    with own_database(keep=args.keep or args.fill_only) as url:
        upgrade(url)
        print(f"filling {sz.rows:,} predictions ...", file=sys.stderr, flush=True)
        fill(url, sz, end_at, timings)
        record_fill(url, FillRecord(sz.rows, end_at, timings.phases, cmd))
        if args.fill_only:
            return 0
        return report(url, args, cmd, machine)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.console_queries", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="predictions to generate (default 10,000,000)")
    p.add_argument("--runs", type=int, default=3, help="EXPLAIN ANALYZE runs per statement; the median is reported")
    p.add_argument("--module", default="console.queries",
                   help="the module of query functions (another one: to measure a proposed rewrite)")
    p.add_argument("--keep", action="store_true", help="keep the database (its name goes to stderr)")
    p.add_argument("--fill-only", action="store_true", help="fill, keep the database and stop")
    p.add_argument("--database", help="measure a database a '--fill-only' run kept, without filling")
    p.add_argument("--results", type=Path, default=RESULTS,
                   help=f"append a section to this file (default {RESULTS.relative_to(c.REPO)})")
    p.add_argument("--no-results", dest="results", action="store_const", const=None,
                   help="print only; append nothing")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    try:
        return run(args, " ".join(argv))
    except BenchError as e:
        print(f"console_queries: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

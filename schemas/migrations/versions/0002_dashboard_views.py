"""dashboard views

Read-only views for Grafana and ad-hoc SQL. Every view carries a time column (``hour`` or
``minute``) so dashboards can filter by time range on the view itself. Postgres is the target;
SQLite (embedded demo) gets equivalents built on ``strftime`` so the same queries by view name
work there too. Buckets are truncated in UTC whatever the session time zone.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# SQLite has no date_trunc: the truncated instant as text.
_SQLITE_FORMAT = {"hour": "%Y-%m-%d %H:00:00", "minute": "%Y-%m-%d %H:%M:00"}


def views(sqlite: bool) -> dict[str, str]:
    """name -> select, for Postgres or SQLite; both dialects return the same columns in the same order."""

    def bucket(unit: str, column: str) -> str:
        if sqlite:
            return f"strftime('{_SQLITE_FORMAT[unit]}', {column})"
        return f"date_trunc('{unit}', {column}, 'UTC')"

    # Ten buckets of width 0.1; bucket = lower edge (confidence 1.0 falls into the 0.9 bucket).
    tenth = "MIN(CAST(confidence * 10 AS INTEGER), 9)" if sqlite else "LEAST(FLOOR(confidence * 10), 9)"
    return {
        "v_sentiment_hourly": f"""
        SELECT {bucket('hour', 'classified_at')} AS hour,
               COALESCE(source, 'unknown') AS source,
               label,
               COUNT(*) AS messages,
               AVG(confidence) AS avg_confidence
        FROM predictions
        GROUP BY 1, 2, 3
        """,
        "v_confidence_hourly": f"""
        SELECT {bucket('hour', 'classified_at')} AS hour,
               label,
               {tenth} / 10.0 AS bucket,
               COUNT(*) AS messages
        FROM predictions
        GROUP BY 1, 2, 3
        """,
        "v_volume_minutely": f"""
        SELECT {bucket('minute', 'classified_at')} AS minute,
               topic,
               COUNT(*) AS messages,
               AVG(latency_ms) AS avg_latency_ms,
               MAX(latency_ms) AS max_latency_ms
        FROM predictions
        GROUP BY 1, 2
        """,
        "v_dead_letters_hourly": f"""
        SELECT {bucket('hour', 'failed_at')} AS hour,
               error_kind,
               topic,
               COUNT(*) AS messages
        FROM dead_letters
        GROUP BY 1, 2, 3
        """,
        # 'base' marks predictions made without an adapter.
        "v_adapter_versions_hourly": f"""
        SELECT {bucket('hour', 'classified_at')} AS hour,
               model_version,
               COALESCE(adapter_version, 'base') AS adapter_version,
               COUNT(*) AS messages,
               MIN(classified_at) AS first_seen,
               MAX(classified_at) AS last_seen
        FROM predictions
        GROUP BY 1, 2, 3
        """,
    }


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    create = "CREATE VIEW" if sqlite else "CREATE OR REPLACE VIEW"
    for name, select in views(sqlite).items():
        op.execute(f"{create} {name} AS {select.strip()}")


def downgrade() -> None:
    for name in reversed(list(views(sqlite=False))):
        op.execute(f"DROP VIEW IF EXISTS {name}")

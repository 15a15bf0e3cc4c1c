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

# name -> (postgres select, sqlite select); both return the same columns in the same order.
VIEWS: dict[str, tuple[str, str]] = {
    "v_sentiment_hourly": (
        """
        SELECT date_trunc('hour', classified_at, 'UTC') AS hour,
               COALESCE(source, 'unknown') AS source,
               label,
               COUNT(*) AS messages,
               AVG(confidence) AS avg_confidence
        FROM predictions
        GROUP BY 1, 2, 3
        """,
        """
        SELECT strftime('%Y-%m-%d %H:00:00', classified_at) AS hour,
               COALESCE(source, 'unknown') AS source,
               label,
               COUNT(*) AS messages,
               AVG(confidence) AS avg_confidence
        FROM predictions
        GROUP BY 1, 2, 3
        """,
    ),
    # Ten buckets of width 0.1; bucket = lower edge (confidence 1.0 falls into the 0.9 bucket).
    "v_confidence_hourly": (
        """
        SELECT date_trunc('hour', classified_at, 'UTC') AS hour,
               label,
               LEAST(FLOOR(confidence * 10), 9) / 10.0 AS bucket,
               COUNT(*) AS messages
        FROM predictions
        GROUP BY 1, 2, 3
        """,
        """
        SELECT strftime('%Y-%m-%d %H:00:00', classified_at) AS hour,
               label,
               MIN(CAST(confidence * 10 AS INTEGER), 9) / 10.0 AS bucket,
               COUNT(*) AS messages
        FROM predictions
        GROUP BY 1, 2, 3
        """,
    ),
    "v_volume_minutely": (
        """
        SELECT date_trunc('minute', classified_at, 'UTC') AS minute,
               topic,
               COUNT(*) AS messages,
               AVG(latency_ms) AS avg_latency_ms,
               MAX(latency_ms) AS max_latency_ms
        FROM predictions
        GROUP BY 1, 2
        """,
        """
        SELECT strftime('%Y-%m-%d %H:%M:00', classified_at) AS minute,
               topic,
               COUNT(*) AS messages,
               AVG(latency_ms) AS avg_latency_ms,
               MAX(latency_ms) AS max_latency_ms
        FROM predictions
        GROUP BY 1, 2
        """,
    ),
    "v_dead_letters_hourly": (
        """
        SELECT date_trunc('hour', failed_at, 'UTC') AS hour,
               error_kind,
               topic,
               COUNT(*) AS messages
        FROM dead_letters
        GROUP BY 1, 2, 3
        """,
        """
        SELECT strftime('%Y-%m-%d %H:00:00', failed_at) AS hour,
               error_kind,
               topic,
               COUNT(*) AS messages
        FROM dead_letters
        GROUP BY 1, 2, 3
        """,
    ),
    # 'base' marks predictions made without an adapter.
    "v_adapter_versions_hourly": (
        """
        SELECT date_trunc('hour', classified_at, 'UTC') AS hour,
               model_version,
               COALESCE(adapter_version, 'base') AS adapter_version,
               COUNT(*) AS messages,
               MIN(classified_at) AS first_seen,
               MAX(classified_at) AS last_seen
        FROM predictions
        GROUP BY 1, 2, 3
        """,
        """
        SELECT strftime('%Y-%m-%d %H:00:00', classified_at) AS hour,
               model_version,
               COALESCE(adapter_version, 'base') AS adapter_version,
               COUNT(*) AS messages,
               MIN(classified_at) AS first_seen,
               MAX(classified_at) AS last_seen
        FROM predictions
        GROUP BY 1, 2, 3
        """,
    ),
}


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, (pg_sql, sqlite_sql) in VIEWS.items():
        if sqlite:
            op.execute(f"CREATE VIEW {name} AS {sqlite_sql.strip()}")
        else:
            op.execute(f"CREATE OR REPLACE VIEW {name} AS {pg_sql.strip()}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")

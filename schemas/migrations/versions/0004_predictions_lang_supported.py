"""predictions.lang_supported

Whether the model's spec serves the message's language (given or detected): false rows are still
classified, by a model that was not trained for them. Null where the language or the spec's
languages are unknown, and on rows written before this revision.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('predictions', sa.Column('lang_supported', sa.Boolean(), nullable=True))


def downgrade() -> None:
    # A plain ALTER (SQLite 3.35+ too): a batch copy of the table would break the dashboard views on it.
    op.drop_column('predictions', 'lang_supported')

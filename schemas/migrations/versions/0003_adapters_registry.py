"""adapters registry

One row per trained adapter; at most one ``active`` row per name (a partial unique index on
Postgres and SQLite), so two concurrent promotions cannot both win.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('adapters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=256), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('base_model', sa.String(length=512), nullable=False),
    sa.Column('artifact_path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('metrics', JSONType, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reasons', JSONType, nullable=True),
    sa.Column('parent_version', sa.String(length=256), nullable=True),
    sa.Column('label_watermark', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('version'),
    sa.CheckConstraint("status IN ('candidate', 'active', 'rejected', 'retired')", name='ck_adapters_status'),
    )
    op.create_index('ix_adapters_name_status', 'adapters', ['name', 'status'])
    op.create_index('ix_adapters_name_created_at', 'adapters', ['name', 'created_at'])
    op.create_index('uq_adapters_one_active', 'adapters', ['name'], unique=True,
                    postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))


def downgrade() -> None:
    op.drop_index('uq_adapters_one_active', table_name='adapters')
    op.drop_index('ix_adapters_name_created_at', table_name='adapters')
    op.drop_index('ix_adapters_name_status', table_name='adapters')
    op.drop_table('adapters')

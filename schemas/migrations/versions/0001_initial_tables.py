"""initial tables

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('topic', sa.String(length=256), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('message_id', sa.String(length=512), nullable=True),
    sa.Column('key', sa.LargeBinary(), nullable=True),
    sa.Column('original', sa.LargeBinary(), nullable=False),
    sa.Column('error_kind', sa.String(length=64), nullable=False),
    sa.Column('error_text', sa.Text(), nullable=False),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('topic', 'partition', 'offset', name='uq_dead_letters_position')
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.create_index('ix_dead_letters_kind_failed_at', ['error_kind', 'failed_at'], unique=False)

    op.create_table('labels',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=512), nullable=False),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('label', sa.String(length=128), nullable=False),
    sa.Column('labeled_by', sa.String(length=256), nullable=False),
    sa.Column('labeled_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('origin', sa.String(length=32), server_default='sql', nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id', 'labeled_by', name='uq_labels_message_labeler')
    )
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.create_index('ix_labels_labeled_at', ['labeled_at'], unique=False)

    op.create_table('predictions',
    sa.Column('message_id', sa.String(length=512), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('label', sa.String(length=128), nullable=False),
    sa.Column('label_id', sa.Integer(), nullable=False),
    sa.Column('scores', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('model_version', sa.String(length=256), nullable=False),
    sa.Column('adapter_version', sa.String(length=256), nullable=True),
    sa.Column('source', sa.String(length=256), nullable=True),
    sa.Column('lang', sa.String(length=32), nullable=True),
    sa.Column('author', sa.String(length=256), nullable=True),
    sa.Column('message_created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('topic', sa.String(length=256), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('classified_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('written_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('message_id')
    )
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.create_index('ix_predictions_classified_at', ['classified_at'], unique=False)
        batch_op.create_index('ix_predictions_label', ['label'], unique=False)
        batch_op.create_index('ix_predictions_source_classified_at', ['source', 'classified_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_index('ix_predictions_source_classified_at')
        batch_op.drop_index('ix_predictions_label')
        batch_op.drop_index('ix_predictions_classified_at')

    op.drop_table('predictions')
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_index('ix_labels_labeled_at')

    op.drop_table('labels')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index('ix_dead_letters_kind_failed_at')

    op.drop_table('dead_letters')

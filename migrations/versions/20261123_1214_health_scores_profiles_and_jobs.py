"""health scores, scoring profiles and jobs

Revision ID: 1f2217e05160
Revises: aedcb1c4f9b3
Create Date: 2026-11-23 12:14:38.319723
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '1f2217e05160'
down_revision: str | None = 'aedcb1c4f9b3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.String(length=50), nullable=False),
    sa.Column('status', sa.String(length=20), server_default='queued', nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('progress', sa.Float(), server_default='0', nullable=False),
    sa.Column('done', sa.Integer(), server_default='0', nullable=False),
    sa.Column('total', sa.Integer(), nullable=True),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('errors', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    op.create_index(op.f('ix_jobs_created_at'), 'jobs', ['created_at'], unique=False)
    op.create_table('scoring_profiles',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('body', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_scoring_profiles'))
    )
    op.create_table('channel_health',
    sa.Column('channel_id', sa.UUID(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('band', sa.String(length=10), nullable=False),
    sa.Column('contributions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('features', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('trend', sa.Float(), nullable=True),
    sa.Column('profile_version', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_channel_health_channel_id_channels'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('channel_id', name=op.f('pk_channel_health'))
    )
    op.create_index(op.f('ix_channel_health_band_score'), 'channel_health', ['band', 'score'], unique=False)
    op.create_index(op.f('ix_channel_health_score'), 'channel_health', ['score'], unique=False)
    op.create_table('channel_health_history',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('channel_id', sa.UUID(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('band', sa.String(length=10), nullable=False),
    sa.Column('contributions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('profile_version', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_channel_health_history_channel_id_channels'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_health_history'))
    )
    op.create_index(op.f('ix_channel_health_history_channel_id_as_of'), 'channel_health_history', ['channel_id', 'as_of'], unique=False)
    op.create_table('customer_health',
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('band', sa.String(length=10), nullable=False),
    sa.Column('contributions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('features', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('trend', sa.Float(), nullable=True),
    sa.Column('profile_version', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_health_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_health'))
    )
    op.create_index(op.f('ix_customer_health_band_score'), 'customer_health', ['band', 'score'], unique=False)
    op.create_index(op.f('ix_customer_health_score'), 'customer_health', ['score'], unique=False)
    op.create_table('customer_health_history',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('band', sa.String(length=10), nullable=False),
    sa.Column('contributions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('profile_version', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_health_history_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_health_history'))
    )
    op.create_index(op.f('ix_customer_health_history_customer_id_as_of'), 'customer_health_history', ['customer_id', 'as_of'], unique=False)
    op.create_table('lifecycle_moves',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('from_stage', sa.String(length=32), nullable=False),
    sa.Column('to_stage', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_lifecycle_moves_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lifecycle_moves'))
    )
    op.create_index(op.f('ix_lifecycle_moves_customer_id_at'), 'lifecycle_moves', ['customer_id', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_lifecycle_moves_customer_id_at'), table_name='lifecycle_moves')
    op.drop_table('lifecycle_moves')
    op.drop_index(op.f('ix_customer_health_history_customer_id_as_of'), table_name='customer_health_history')
    op.drop_table('customer_health_history')
    op.drop_index(op.f('ix_customer_health_score'), table_name='customer_health')
    op.drop_index(op.f('ix_customer_health_band_score'), table_name='customer_health')
    op.drop_table('customer_health')
    op.drop_index(op.f('ix_channel_health_history_channel_id_as_of'), table_name='channel_health_history')
    op.drop_table('channel_health_history')
    op.drop_index(op.f('ix_channel_health_score'), table_name='channel_health')
    op.drop_index(op.f('ix_channel_health_band_score'), table_name='channel_health')
    op.drop_table('channel_health')
    op.drop_table('scoring_profiles')
    op.drop_index(op.f('ix_jobs_created_at'), table_name='jobs')
    op.drop_table('jobs')

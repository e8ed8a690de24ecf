"""report pre-aggregates: figures per segment and period that reports sum instead of scanning

The worker rebuilds them (daily, after imports, or on request): customers grouped into segments
by channel, tier, owner and tags; per week, month and quarter the new, won-back and churned
customers, orders, revenue and order intervals; first-order cohorts by month; and a daily
snapshot of score bands and a histogram of scores. The index on customer_health.trend finds
the customers whose score fell most.

Revision ID: 161eeeb3bd08
Revises: 6fb2962022ba
Create Date: 2026-11-23 17:27:01.838193
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
revision: str = '161eeeb3bd08'
down_revision: str | None = '6fb2962022ba'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('report_cohorts',
    sa.Column('segment_id', sa.Integer(), nullable=False),
    sa.Column('cohort', sa.Date(), nullable=False),
    sa.Column('month_offset', sa.SmallInteger(), nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('segment_id', 'cohort', 'month_offset', name=op.f('pk_report_cohorts'))
    )
    op.create_table('report_health_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('segment_id', sa.Integer(), nullable=False),
    sa.Column('green', sa.Integer(), nullable=False),
    sa.Column('yellow', sa.Integer(), nullable=False),
    sa.Column('red', sa.Integer(), nullable=False),
    sa.Column('histogram', postgresql.ARRAY(sa.BigInteger()), nullable=False),
    sa.PrimaryKeyConstraint('day', 'segment_id', name=op.f('pk_report_health_days'))
    )
    op.create_table('report_periods',
    sa.Column('unit', sa.String(length=8), nullable=False),
    sa.Column('segment_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('new_customers', sa.Integer(), nullable=False),
    sa.Column('won_back', sa.Integer(), nullable=False),
    sa.Column('churned', sa.Integer(), nullable=False),
    sa.Column('churned_from_start', sa.Integer(), nullable=False),
    sa.Column('ordering_customers', sa.Integer(), nullable=False),
    sa.Column('repeat_customers', sa.Integer(), nullable=False),
    sa.Column('orders', sa.Integer(), nullable=False),
    sa.Column('revenue', sa.Numeric(precision=20, scale=4), nullable=False),
    sa.Column('interval_days', sa.BigInteger(), nullable=False),
    sa.Column('intervals', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('unit', 'segment_id', 'period', name=op.f('pk_report_periods'))
    )
    op.create_table('report_refreshes',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('churn_days', sa.Integer(), nullable=False),
    sa.Column('segments', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Double(), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_refreshes'))
    )
    op.create_index(op.f('ix_report_refreshes_finished_at'), 'report_refreshes', ['finished_at'], unique=False)
    op.create_table('report_segments',
    sa.Column('id', sa.Integer(), sa.Identity(always=False), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('channel_id', sa.UUID(), nullable=True),
    sa.Column('value_tier', sa.String(length=32), nullable=True),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('tags', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_segments')),
    sa.UniqueConstraint('key', name=op.f('uq_report_segments_key'))
    )
    op.create_index(op.f('ix_customer_health_trend'), 'customer_health', ['trend'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_customer_health_trend'), table_name='customer_health')
    op.drop_table('report_segments')
    op.drop_index(op.f('ix_report_refreshes_finished_at'), table_name='report_refreshes')
    op.drop_table('report_refreshes')
    op.drop_table('report_periods')
    op.drop_table('report_health_days')
    op.drop_table('report_cohorts')

"""sla policies: targets per priority, business hours and pause statuses; SLA state on tickets

A ticket now records which policy timed it, when its due-soon marks fall, whether the scheduled
check has warned about them, and the spans its clock was paused, so due times can be recomputed
from creation over every pause. The default policy gives tickets of any channel without a policy
of its own round-the-clock targets, paused while waiting on the customer. Tickets opened before
this migration keep no due times until their priority changes.

Revision ID: b76522858aa4
Revises: 849624a516cd
Create Date: 2026-11-23 15:24:38.495650
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'b76522858aa4'
down_revision: str | None = '849624a516cd'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sla_policies',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('channel_id', sa.UUID(), nullable=True),
    sa.Column('is_default', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('targets', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('business_hours', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('pause_statuses', postgresql.ARRAY(sa.Text()), server_default='{pending}', nullable=False),
    sa.Column('due_soon_ratio', sa.Float(), server_default='0.8', nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.CheckConstraint("targets ?& ARRAY['low', 'normal', 'high', 'urgent']", name=op.f('ck_sla_policies_targets_every_priority')),
    sa.CheckConstraint('NOT (is_default AND channel_id IS NOT NULL)', name=op.f('ck_sla_policies_default_for_every_channel')),
    sa.CheckConstraint('due_soon_ratio > 0 AND due_soon_ratio < 1', name=op.f('ck_sla_policies_due_soon_ratio_range')),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_sla_policies_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_policies'))
    )
    op.create_index('uq_sla_policies_channel_id', 'sla_policies', ['channel_id'], unique=True, postgresql_where=sa.text('channel_id IS NOT NULL AND archived_at IS NULL'))
    op.create_index('uq_sla_policies_default', 'sla_policies', ['is_default'], unique=True, postgresql_where=sa.text('is_default AND archived_at IS NULL'))
    op.add_column('tickets', sa.Column('sla_policy_id', sa.UUID(), nullable=True))
    op.add_column('tickets', sa.Column('first_response_due_soon_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tickets', sa.Column('resolution_due_soon_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tickets', sa.Column('paused_since', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tickets', sa.Column('sla_pauses', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False))
    op.add_column('tickets', sa.Column('first_response_warned', sa.Boolean(), server_default='false', nullable=False))
    op.add_column('tickets', sa.Column('resolution_warned', sa.Boolean(), server_default='false', nullable=False))
    op.create_index('ix_tickets_sla_pending', 'tickets', ['resolution_due_at'], unique=False, postgresql_where=sa.text('resolved_at IS NULL AND NOT resolution_breached'))
    op.create_foreign_key(op.f('fk_tickets_sla_policy_id_sla_policies'), 'tickets', 'sla_policies', ['sla_policy_id'], ['id'])
    policies = sa.table(
        "sla_policies",
        sa.column("id", sa.UUID()),
        sa.column("name", sa.String()),
        sa.column("is_default", sa.Boolean()),
        sa.column("targets", postgresql.JSONB()),
    )
    op.bulk_insert(
        policies,
        [{"id": DEFAULT_POLICY_ID, "name": "Default", "is_default": True, "targets": DEFAULT_TARGETS}],
    )


DEFAULT_POLICY_ID = uuid.UUID("019ab000-0000-7000-8000-000000000101")
DEFAULT_TARGETS = {
    priority: {"first_response_minutes": first, "resolution_minutes": resolution}
    for priority, first, resolution in (
        ("urgent", 60, 240),
        ("high", 240, 1440),
        ("normal", 480, 2880),
        ("low", 1440, 5760),
    )
}


def downgrade() -> None:
    op.drop_constraint(op.f('fk_tickets_sla_policy_id_sla_policies'), 'tickets', type_='foreignkey')
    op.drop_index('ix_tickets_sla_pending', table_name='tickets', postgresql_where=sa.text('resolved_at IS NULL AND NOT resolution_breached'))
    op.drop_column('tickets', 'resolution_warned')
    op.drop_column('tickets', 'first_response_warned')
    op.drop_column('tickets', 'sla_pauses')
    op.drop_column('tickets', 'paused_since')
    op.drop_column('tickets', 'resolution_due_soon_at')
    op.drop_column('tickets', 'first_response_due_soon_at')
    op.drop_column('tickets', 'sla_policy_id')
    op.drop_index('uq_sla_policies_default', table_name='sla_policies', postgresql_where=sa.text('is_default AND archived_at IS NULL'))
    op.drop_index('uq_sla_policies_channel_id', table_name='sla_policies', postgresql_where=sa.text('channel_id IS NOT NULL AND archived_at IS NULL'))
    op.drop_table('sla_policies')

"""alerts: rules, alerts (one open per rule and subject), notes, and the default rules

The default rules are what most teams start with: a customer or channel turning red, an
A-tier customer with no order for 60 days, three complaints in 90 days, an SLA breach.

Revision ID: 849624a516cd
Revises: 503498cfc814
Create Date: 2026-11-23 15:14:30.921986
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '849624a516cd'
down_revision: str | None = '503498cfc814'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alert_rules',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.Enum('inactivity', 'order_value_drop', 'complaints', 'score_below', 'score_drop', 'band_change', 'sla_breach', 'satisfaction_drop', name='alertkind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('subject', sa.Enum('customer', 'channel', name='alertsubject', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('severity', sa.Enum('low', 'medium', 'high', 'critical', name='severity', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('tiers', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('channel_id', sa.UUID(), nullable=True),
    sa.Column('tag', sa.String(length=50), nullable=True),
    sa.Column('auto_resolve', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('due_hours', sa.Integer(), server_default='72', nullable=False),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_alert_rules_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_rules'))
    )
    op.create_table('alerts',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('rule_id', sa.UUID(), nullable=False),
    sa.Column('subject', sa.Enum('customer', 'channel', name='alertsubject', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('subject_id', sa.UUID(), nullable=False),
    sa.Column('channel_id', sa.UUID(), nullable=True),
    sa.Column('severity', sa.Enum('low', 'medium', 'high', 'critical', name='severity', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('status', sa.Enum('open', 'acknowledged', 'resolved', 'dismissed', name='alertstatus', native_enum=False, create_constraint=True, length=32), server_default='open', nullable=False),
    sa.Column('reason', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_fired_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('fire_count', sa.Integer(), server_default='1', nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=200), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=200), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['rule_id'], ['alert_rules.id'], name=op.f('fk_alerts_rule_id_alert_rules')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    op.create_index(op.f('ix_alerts_channel_id'), 'alerts', ['channel_id'], unique=False)
    op.create_index(op.f('ix_alerts_owner_status'), 'alerts', ['owner', 'status'], unique=False)
    op.create_index(op.f('ix_alerts_status_opened_at'), 'alerts', ['status', 'opened_at'], unique=False)
    op.create_index(op.f('ix_alerts_subject_id'), 'alerts', ['subject_id'], unique=False)
    op.create_index('uq_alerts_open_rule_subject', 'alerts', ['rule_id', 'subject_id'], unique=True, postgresql_where=sa.text("status IN ('open', 'acknowledged')"))
    op.create_table('alert_notes',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('alert_id', sa.UUID(), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_notes_alert_id_alerts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_notes'))
    )
    op.create_index(op.f('ix_alert_notes_alert_id_created_at'), 'alert_notes', ['alert_id', 'created_at'], unique=False)
    rules = sa.table(
        "alert_rules",
        sa.column("id", sa.UUID()),
        sa.column("name", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("subject", sa.String()),
        sa.column("params", postgresql.JSONB()),
        sa.column("severity", sa.String()),
        sa.column("tiers", postgresql.ARRAY(sa.Text())),
    )
    op.bulk_insert(
        rules,
        [
            {"id": uuid.UUID(i), "name": n, "kind": k, "subject": s, "params": p, "severity": v, "tiers": t}
            for i, n, k, s, p, v, t in DEFAULT_RULES
        ],
    )


DEFAULT_RULES = (
    ("019ab000-0000-7000-8000-000000000001", "Customer turned red", "band_change", "customer", {"to": ["red"]}, "high", []),
    ("019ab000-0000-7000-8000-000000000002", "A-tier customer silent for 60 days", "inactivity", "customer", {"days": 60, "of": "order"}, "high", ["A"]),
    ("019ab000-0000-7000-8000-000000000003", "Three complaints in 90 days", "complaints", "customer", {"count": 3}, "medium", []),
    ("019ab000-0000-7000-8000-000000000004", "Ticket SLA breached", "sla_breach", "customer", {"count": 1}, "medium", []),
    ("019ab000-0000-7000-8000-000000000005", "Channel turned red", "band_change", "channel", {"to": ["red"]}, "high", []),
)


def downgrade() -> None:
    op.drop_index(op.f('ix_alert_notes_alert_id_created_at'), table_name='alert_notes')
    op.drop_table('alert_notes')
    op.drop_index('uq_alerts_open_rule_subject', table_name='alerts', postgresql_where=sa.text("status IN ('open', 'acknowledged')"))
    op.drop_index(op.f('ix_alerts_subject_id'), table_name='alerts')
    op.drop_index(op.f('ix_alerts_status_opened_at'), table_name='alerts')
    op.drop_index(op.f('ix_alerts_owner_status'), table_name='alerts')
    op.drop_index(op.f('ix_alerts_channel_id'), table_name='alerts')
    op.drop_table('alerts')
    op.drop_table('alert_rules')

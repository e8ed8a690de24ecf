"""initial schema

Revision ID: aedcb1c4f9b3
Revises: 
Create Date: 2026-11-23 11:40:11.804274
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'aedcb1c4f9b3'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    op.create_table('api_keys',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('scopes', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor_id', sa.UUID(), nullable=True),
    sa.Column('actor_name', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=50), nullable=False),
    sa.Column('resource_type', sa.String(length=50), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=True),
    sa.Column('before', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('after', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('request_id', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    op.create_index(op.f('ix_audit_events_occurred_at'), 'audit_events', ['occurred_at'], unique=False)
    op.create_index(op.f('ix_audit_events_resource_type_resource_id_id'), 'audit_events', ['resource_type', 'resource_id', 'id'], unique=False)
    op.create_table('channels',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('external_ref', sa.String(length=200), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('type', sa.Enum('agent', 'distributor', 'reseller', 'online', 'direct', name='channeltype', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('tier', sa.Enum('core', 'growth', 'potential', name='channeltier', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('status', sa.Enum('active', 'paused', 'ended', name='channelstatus', native_enum=False, create_constraint=True, length=32), server_default='active', nullable=False),
    sa.Column('contract_start', sa.Date(), nullable=True),
    sa.Column('contract_end', sa.Date(), nullable=True),
    sa.Column('tags', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channels')),
    sa.UniqueConstraint('external_ref', name=op.f('uq_channels_external_ref'))
    )
    op.create_index(op.f('ix_channels_created_at_id'), 'channels', ['created_at', 'id'], unique=False)
    op.create_index('ix_channels_name_trgm', 'channels', ['name'], unique=False, postgresql_using='gin', postgresql_ops={'name': 'gin_trgm_ops'})
    op.create_index(op.f('ix_channels_owner'), 'channels', ['owner'], unique=False)
    op.create_index(op.f('ix_channels_tags'), 'channels', ['tags'], unique=False, postgresql_using='gin')
    op.create_table('outbox_events',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('relayed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_events'))
    )
    op.create_index('ix_outbox_events_pending', 'outbox_events', ['id'], unique=False, postgresql_where=sa.text('relayed_at IS NULL'))
    op.create_table('customers',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('external_ref', sa.String(length=200), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=50), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('channel_id', sa.UUID(), nullable=True),
    sa.Column('value_tier', sa.Enum('A', 'B', 'C', name='valuetier', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('lifecycle_stage', sa.Enum('onboarding', 'active', 'at_risk', 'churned', 'won_back', name='lifecyclestage', native_enum=False, create_constraint=True, length=32), server_default='onboarding', nullable=False),
    sa.Column('tags', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('contract_end', sa.Date(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_customers_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('external_ref', name=op.f('uq_customers_external_ref'))
    )
    op.create_index(op.f('ix_customers_channel_id'), 'customers', ['channel_id'], unique=False)
    op.create_index(op.f('ix_customers_created_at_id'), 'customers', ['created_at', 'id'], unique=False)
    op.create_index('ix_customers_external_ref_trgm', 'customers', ['external_ref'], unique=False, postgresql_using='gin', postgresql_ops={'external_ref': 'gin_trgm_ops'})
    op.create_index('ix_customers_name_trgm', 'customers', ['name'], unique=False, postgresql_using='gin', postgresql_ops={'name': 'gin_trgm_ops'})
    op.create_index(op.f('ix_customers_owner'), 'customers', ['owner'], unique=False)
    op.create_index(op.f('ix_customers_tags'), 'customers', ['tags'], unique=False, postgresql_using='gin')
    op.create_table('idempotency_records',
    sa.Column('api_key_id', sa.UUID(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.SmallInteger(), nullable=False),
    sa.Column('response_body', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('response_headers', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_idempotency_records_api_key_id_api_keys'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('api_key_id', 'key', name=op.f('pk_idempotency_records'))
    )
    op.create_index(op.f('ix_idempotency_records_created_at'), 'idempotency_records', ['created_at'], unique=False)
    op.create_table('customer_channel_memberships',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('channel_id', sa.UUID(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_customer_channel_memberships_channel_id_channels')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_channel_memberships_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_channel_memberships'))
    )
    op.create_index(op.f('ix_customer_channel_memberships_customer_id_started_at'), 'customer_channel_memberships', ['customer_id', 'started_at'], unique=False)
    op.create_index('uq_customer_channel_memberships_open', 'customer_channel_memberships', ['customer_id'], unique=True, postgresql_where=sa.text('ended_at IS NULL'))
    op.create_table('interactions',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('channel_id', sa.UUID(), nullable=True),
    sa.Column('kind', sa.Enum('order', 'payment', 'visit', 'call', 'email', 'meeting', 'usage', 'feedback', 'complaint', 'referral', 'campaign_response', name='interactionkind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=4), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('satisfaction', sa.SmallInteger(), nullable=True),
    sa.Column('nps', sa.SmallInteger(), nullable=True),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('nps BETWEEN 0 AND 10', name=op.f('ck_interactions_nps_range')),
    sa.CheckConstraint('satisfaction BETWEEN 1 AND 5', name=op.f('ck_interactions_satisfaction_range')),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_interactions_channel_id_channels')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_interactions_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_interactions')),
    sa.UniqueConstraint('external_id', name=op.f('uq_interactions_external_id'))
    )
    op.create_index(op.f('ix_interactions_channel_id_occurred_at'), 'interactions', ['channel_id', 'occurred_at'], unique=False)
    op.create_index(op.f('ix_interactions_customer_id_occurred_at'), 'interactions', ['customer_id', 'occurred_at'], unique=False)
    op.create_index(op.f('ix_interactions_occurred_at_id'), 'interactions', ['occurred_at', 'id'], unique=False)
    op.create_table('tickets',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('channel_id', sa.UUID(), nullable=True),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('kind', sa.Enum('complaint', 'request', 'incident', name='ticketkind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('priority', sa.Enum('low', 'normal', 'high', 'urgent', name='ticketpriority', native_enum=False, create_constraint=True, length=32), server_default='normal', nullable=False),
    sa.Column('status', sa.Enum('open', 'pending', 'resolved', 'closed', name='ticketstatus', native_enum=False, create_constraint=True, length=32), server_default='open', nullable=False),
    sa.Column('assignee', sa.String(length=200), nullable=True),
    sa.Column('first_response_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_response_breached', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('resolution_breached', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.Column('satisfaction', sa.SmallInteger(), nullable=True),
    sa.Column('tags', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.CheckConstraint('satisfaction BETWEEN 1 AND 5', name=op.f('ck_tickets_satisfaction_range')),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_tickets_channel_id_channels')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_tickets_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets')),
    sa.UniqueConstraint('external_id', name=op.f('uq_tickets_external_id'))
    )
    op.create_index(op.f('ix_tickets_assignee'), 'tickets', ['assignee'], unique=False)
    op.create_index(op.f('ix_tickets_channel_id'), 'tickets', ['channel_id'], unique=False)
    op.create_index(op.f('ix_tickets_created_at_id'), 'tickets', ['created_at', 'id'], unique=False)
    op.create_index(op.f('ix_tickets_customer_id_created_at'), 'tickets', ['customer_id', 'created_at'], unique=False)
    op.create_index(op.f('ix_tickets_status_priority'), 'tickets', ['status', 'priority'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_tickets_status_priority'), table_name='tickets')
    op.drop_index(op.f('ix_tickets_customer_id_created_at'), table_name='tickets')
    op.drop_index(op.f('ix_tickets_created_at_id'), table_name='tickets')
    op.drop_index(op.f('ix_tickets_channel_id'), table_name='tickets')
    op.drop_index(op.f('ix_tickets_assignee'), table_name='tickets')
    op.drop_table('tickets')
    op.drop_index(op.f('ix_interactions_occurred_at_id'), table_name='interactions')
    op.drop_index(op.f('ix_interactions_customer_id_occurred_at'), table_name='interactions')
    op.drop_index(op.f('ix_interactions_channel_id_occurred_at'), table_name='interactions')
    op.drop_table('interactions')
    op.drop_index('uq_customer_channel_memberships_open', table_name='customer_channel_memberships', postgresql_where=sa.text('ended_at IS NULL'))
    op.drop_index(op.f('ix_customer_channel_memberships_customer_id_started_at'), table_name='customer_channel_memberships')
    op.drop_table('customer_channel_memberships')
    op.drop_index(op.f('ix_idempotency_records_created_at'), table_name='idempotency_records')
    op.drop_table('idempotency_records')
    op.drop_index(op.f('ix_customers_tags'), table_name='customers', postgresql_using='gin')
    op.drop_index(op.f('ix_customers_owner'), table_name='customers')
    op.drop_index('ix_customers_name_trgm', table_name='customers', postgresql_using='gin', postgresql_ops={'name': 'gin_trgm_ops'})
    op.drop_index('ix_customers_external_ref_trgm', table_name='customers', postgresql_using='gin', postgresql_ops={'external_ref': 'gin_trgm_ops'})
    op.drop_index(op.f('ix_customers_created_at_id'), table_name='customers')
    op.drop_index(op.f('ix_customers_channel_id'), table_name='customers')
    op.drop_table('customers')
    op.drop_index('ix_outbox_events_pending', table_name='outbox_events', postgresql_where=sa.text('relayed_at IS NULL'))
    op.drop_table('outbox_events')
    op.drop_index(op.f('ix_channels_tags'), table_name='channels', postgresql_using='gin')
    op.drop_index(op.f('ix_channels_owner'), table_name='channels')
    op.drop_index('ix_channels_name_trgm', table_name='channels', postgresql_using='gin', postgresql_ops={'name': 'gin_trgm_ops'})
    op.drop_index(op.f('ix_channels_created_at_id'), table_name='channels')
    op.drop_table('channels')
    op.drop_index(op.f('ix_audit_events_resource_type_resource_id_id'), table_name='audit_events')
    op.drop_index(op.f('ix_audit_events_occurred_at'), table_name='audit_events')
    op.drop_table('audit_events')
    op.drop_table('api_keys')
    op.execute('DROP EXTENSION IF EXISTS pg_trgm')

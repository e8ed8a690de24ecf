"""import runs: where each bulk import of a file got to, so an interrupted one resumes

Every committed batch of `retention import` updates its run in the same transaction: the last
committed line and byte, the error report's size, the counts so far and the customers written
(for the recompute that follows). A run is found again by path, size and modification time.

Revision ID: 6fb2962022ba
Revises: b76522858aa4
Create Date: 2026-11-23 16:06:58.653659
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '6fb2962022ba'
down_revision: str | None = 'b76522858aa4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('import_runs',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.Enum('interactions', 'customers', 'channels', 'tickets', name='importkind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
    sa.Column('format', sa.String(length=10), nullable=False),
    sa.Column('status', sa.Enum('running', 'finished', 'abandoned', name='importstatus', native_enum=False, create_constraint=True, length=32), server_default='running', nullable=False),
    sa.Column('committed_line', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('committed_offset', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('report_size', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('rows', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('imported', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('duplicates', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('failed', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('customer_ids', postgresql.ARRAY(sa.UUID()), server_default='{}', nullable=False),
    sa.Column('all_customers', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('recompute_job_id', sa.UUID(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_runs'))
    )
    op.create_index(op.f('ix_import_runs_path_kind_started_at'), 'import_runs', ['path', 'kind', 'started_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_import_runs_path_kind_started_at'), table_name='import_runs')
    op.drop_table('import_runs')

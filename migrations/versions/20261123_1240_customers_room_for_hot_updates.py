"""customers leave room on each page for in-place (HOT) updates

Rescoring changes lifecycle stages and value tiers of many customers at once; with free room
on the page and no indexed column changed, PostgreSQL updates the row without touching the
table's seven indexes (two of them trigram GIN).

Revision ID: 5b7c0e1d2a34
Revises: 1f2217e05160
Create Date: 2026-11-23 12:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5b7c0e1d2a34"
down_revision: str | None = "1f2217e05160"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE customers SET (fillfactor = 85)")


def downgrade() -> None:
    op.execute("ALTER TABLE customers RESET (fillfactor)")

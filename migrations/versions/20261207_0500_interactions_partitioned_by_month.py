"""interactions partitioned by month of occurred_at

The table is rebuilt as `PARTITION BY RANGE (occurred_at)`: a partition per calendar month
(UTC) named `interactions_YYYY_MM`, and `interactions_default` for rows of a month that has no
partition yet, so an insert never fails for want of one. `ensure_interaction_partitions(first,
last)` creates the missing months of a range, moving their rows out of the default partition;
the worker calls it ahead of time and for what lands in the default (services/core/partitions.py).

A unique constraint on a partitioned table must contain the partition key, so the uniqueness of
`external_id` moves to `interaction_external_ids`, which maps each external id to its
interaction. Existing rows are copied into the new table: on a large database this migration
rewrites interactions once.

Revision ID: 312c578ff8a3
Revises: 8c201d37a52f
Create Date: 2026-12-07 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "312c578ff8a3"
down_revision: str | None = "8c201d37a52f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "id, customer_id, channel_id, kind, occurred_at, amount, currency, satisfaction, nps, "
    "external_id, summary, attributes, created_at"
)
INDEXES = (
    ("ix_interactions_channel_id_occurred_at", ["channel_id", "occurred_at"], None),
    (
        "ix_interactions_customer_id_occurred_at",
        ["customer_id", "occurred_at"],
        ["kind", "amount", "satisfaction", "nps"],
    ),
    ("ix_interactions_occurred_at_id", ["occurred_at", "id"], None),
)
AHEAD = "interval '3 months'"

# Create, fill, then attach: ATTACH PARTITION takes a weaker lock on interactions than
# CREATE TABLE ... PARTITION OF, so readers and writers of other months carry on meanwhile.
ENSURE_FUNCTION = """
CREATE FUNCTION ensure_interaction_partitions(first_at timestamptz, last_at timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  month timestamp := date_trunc('month', first_at, 'UTC') AT TIME ZONE 'UTC';
  stop timestamp := date_trunc('month', last_at, 'UTC') AT TIME ZONE 'UTC';
  name text;
  low text;
  high text;
  created integer := 0;
BEGIN
  IF first_at IS NULL OR last_at IS NULL THEN
    RETURN 0;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('ensure_interaction_partitions'));
  WHILE month <= stop LOOP
    name := 'interactions_' || to_char(month, 'YYYY_MM');
    IF to_regclass(name) IS NULL THEN
      low := to_char(month, 'YYYY-MM-DD') || ' 00:00:00+00';
      high := to_char(month + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00';
      EXECUTE format(
        'CREATE TABLE %I (LIKE interactions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
      EXECUTE format(
        'WITH moved AS (DELETE FROM interactions_default WHERE occurred_at >= %L '
        'AND occurred_at < %L RETURNING *) INSERT INTO %I SELECT * FROM moved', low, high, name);
      EXECUTE format(
        'ALTER TABLE interactions ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        name, low, high);
      created := created + 1;
    END IF;
    month := month + interval '1 month';
  END LOOP;
  RETURN created;
END
$$
"""


def _columns() -> list[sa.Column[object]]:
    kinds = (
        "order",
        "payment",
        "visit",
        "call",
        "email",
        "meeting",
        "usage",
        "feedback",
        "complaint",
        "referral",
        "campaign_response",
    )
    return [
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("channel_id", sa.UUID(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                *kinds, name="interactionkind", native_enum=False, create_constraint=True, length=32
            ),
            nullable=False,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("satisfaction", sa.SmallInteger(), nullable=True),
        sa.Column("nps", sa.SmallInteger(), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("nps BETWEEN 0 AND 10", name=op.f("ck_interactions_nps_range")),
        sa.CheckConstraint(
            "satisfaction BETWEEN 1 AND 5", name=op.f("ck_interactions_satisfaction_range")
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_interactions_channel_id_channels")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_interactions_customer_id_customers")
        ),
    ]  # type: ignore[list-item]


def _set_aside() -> None:
    """Rename interactions out of the way and free the names of its indexes."""
    op.execute("ALTER TABLE interactions RENAME TO interactions_old")
    op.execute("ALTER TABLE interactions_old DROP CONSTRAINT pk_interactions")
    op.execute("ALTER TABLE interactions_old DROP CONSTRAINT IF EXISTS uq_interactions_external_id")
    for name, _, _ in INDEXES:
        op.execute(f"DROP INDEX {name}")


def _create_indexes() -> None:
    for name, columns, include in INDEXES:
        op.create_index(name, "interactions", columns, postgresql_include=include)


def upgrade() -> None:
    _set_aside()
    op.create_table(
        "interactions",
        *_columns(),
        sa.PrimaryKeyConstraint("id", "occurred_at", name=op.f("pk_interactions")),
        postgresql_partition_by="RANGE (occurred_at)",
    )
    _create_indexes()
    op.execute("CREATE TABLE interactions_default PARTITION OF interactions DEFAULT")
    op.execute(ENSURE_FUNCTION)
    op.execute("""
        SELECT ensure_interaction_partitions(month, month)
        FROM (SELECT DISTINCT date_trunc('month', occurred_at, 'UTC') AS month
              FROM interactions_old) months
    """)
    op.execute(f"SELECT ensure_interaction_partitions(now(), now() + {AHEAD})")
    op.execute(f"INSERT INTO interactions ({COLUMNS}) SELECT {COLUMNS} FROM interactions_old")

    op.create_table(
        "interaction_external_ids",
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("interaction_id", sa.UUID(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("external_id", name=op.f("pk_interaction_external_ids")),
    )
    op.execute("""
        INSERT INTO interaction_external_ids (external_id, interaction_id, occurred_at, created_at)
        SELECT external_id, id, occurred_at, created_at FROM interactions_old
        WHERE external_id IS NOT NULL
    """)
    op.drop_table("interactions_old")


def downgrade() -> None:
    _set_aside()
    op.create_table(
        "interactions",
        *_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interactions")),
        sa.UniqueConstraint("external_id", name=op.f("uq_interactions_external_id")),
    )
    _create_indexes()
    op.execute(f"INSERT INTO interactions ({COLUMNS}) SELECT {COLUMNS} FROM interactions_old")
    op.execute("DROP TABLE interactions_old CASCADE")
    op.execute("DROP FUNCTION ensure_interaction_partitions(timestamptz, timestamptz)")
    op.drop_table("interaction_external_ids")

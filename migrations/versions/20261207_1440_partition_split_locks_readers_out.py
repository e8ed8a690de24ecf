"""ensure_interaction_partitions: readers wait for a new partition instead of missing rows

A query that started while a month was being split out of the default partition planned over
the old partitions, waited for the default partition's lock, then read with a snapshot taken
after the split: the moved rows were in none of the partitions it scanned (a count of 100 such
rows read 0). The function now locks interactions against readers before it creates a
partition, so they plan again once it has committed. It runs hourly and before import batches,
and holds the lock only while it creates and fills the missing months.

Revision ID: 9d4f6b1e2a70
Revises: 5b7e2a9c4d13
Create Date: 2026-12-07 14:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9d4f6b1e2a70"
down_revision: str | None = "5b7e2a9c4d13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCK = """
      IF created = 0 THEN
        LOCK TABLE interactions IN ACCESS EXCLUSIVE MODE;
      END IF;"""

FUNCTION = """
CREATE OR REPLACE FUNCTION ensure_interaction_partitions(first_at timestamptz, last_at timestamptz)
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
    IF to_regclass(name) IS NULL THEN{lock}
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


def upgrade() -> None:
    op.execute(FUNCTION.replace("{lock}", LOCK))


def downgrade() -> None:
    op.execute(FUNCTION.replace("{lock}", ""))

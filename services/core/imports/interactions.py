"""Interactions: one INSERT ... SELECT per batch that resolves customers and channels, skips
external ids already stored (claimed in interaction_external_ids, `ON CONFLICT DO NOTHING`),
and answers the customers it wrote to, for the run's recompute; the partitions of the batch's
months are created beforehand."""

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
import uuid_utils

from services.core import partitions
from services.core.imports.formats import Values
from services.core.imports.load import (
    STAGING,
    Context,
    Loader,
    Staged,
    Written,
    channel_join,
    customer_join,
    references,
    used,
)
from services.core.imports.values import dump_json
from services.core.models.imports import ImportKind

PARTITION_LOCK_TIMEOUT = timedelta(milliseconds=500)
"""How long creating a month's partition may wait for readers, who wait behind it meanwhile."""


class InteractionLoader(Loader):
    kind = ImportKind.interactions
    columns = (
        ("id", "uuid"),
        ("customer_id", "uuid"),
        ("customer_ref", "text"),
        ("channel_id", "uuid"),
        ("channel_ref", "text"),
        ("kind", "text"),
        ("occurred_at", "timestamptz"),
        ("amount", "numeric"),
        ("currency", "text"),
        ("satisfaction", "smallint"),
        ("nps", "smallint"),
        ("external_id", "text"),
        ("summary", "text"),
        ("attributes", "jsonb"),
    )
    _VALUES = (
        "id, customer_id, channel_id, kind, occurred_at, amount, currency, satisfaction, nps, "
        "external_id, summary, attributes"
    )

    _OCCURRED_AT = 1 + [name for name, _ in columns].index("occurred_at")

    def __init__(self) -> None:
        self._statements: dict[tuple[bool, ...], str] = {}
        self._months: set[datetime] = set()

    async def prepare(self, conn: asyncpg.Connection, rows: Sequence[Staged]) -> None:
        """Partitions for the months of the batch, created ahead of its transaction, so that
        history lands in its months' partitions rather than in the default one. A month whose
        partition would wait for long readers (an export, say) is tried again with the next
        batch instead, so that the import never holds up everyone reading interactions."""
        at = self._OCCURRED_AT
        months = partitions.months_of([r[at] for r in rows if r[at] is not None]) - self._months
        if months:
            self._months |= await partitions.ensure_months(conn, months, PARTITION_LOCK_TIMEOUT)

    def stage(self, line: int, round_: int, row: Values, context: Context) -> Staged:
        get = row.get
        amount = get("amount")
        attributes = get("attributes")
        return (
            line,
            uuid_utils.uuid7(),  # never compared in Python: the time-ordered id, without a conversion
            *references(row),
            get("kind"),
            get("occurred_at"),
            amount,
            get("currency") or (context.default_currency if amount is not None else None),
            get("satisfaction"),
            get("nps"),
            get("external_id"),
            get("summary"),
            "{}" if attributes is None else dump_json(attributes),
        )

    def _statement(self, flags: tuple[bool, bool, bool, bool], ordered: bool) -> str:
        key = (*flags, ordered)
        if key not in self._statements:
            customer_joins, customer_id, customer_channel = customer_join(flags[0], flags[1])
            channel_joins, channel_id = channel_join(flags[2], flags[3])
            named = "(s.channel_id IS NOT NULL OR s.channel_ref IS NOT NULL)"
            order = 'ORDER BY external_id COLLATE "C"' if ordered else ""
            self._statements[key] = f"""
WITH resolved AS MATERIALIZED (
  SELECT s.line, s.id, s.kind, s.occurred_at, s.amount, s.currency, s.satisfaction, s.nps,
         s.external_id, s.summary, s.attributes,
         {customer_id} AS customer_id,
         CASE WHEN {named} THEN {channel_id} ELSE {customer_channel} END AS channel_id,
         {named} AND {channel_id} IS NULL AS channel_missing
  FROM {STAGING} s {customer_joins} {channel_joins}
),
claimed AS (
  INSERT INTO interaction_external_ids (external_id, interaction_id, occurred_at)
  SELECT external_id, id, occurred_at FROM resolved
  WHERE customer_id IS NOT NULL AND NOT channel_missing AND external_id IS NOT NULL
  {order}
  ON CONFLICT (external_id) DO NOTHING
  RETURNING interaction_id
),
inserted AS (
  INSERT INTO interactions ({self._VALUES})
  SELECT {self._VALUES} FROM resolved
  WHERE customer_id IS NOT NULL AND NOT channel_missing
    AND (external_id IS NULL OR id IN (SELECT interaction_id FROM claimed))
  RETURNING customer_id
)
SELECT (SELECT count(*) FROM inserted) AS imported,
  (SELECT count(*) FROM resolved WHERE customer_id IS NOT NULL AND NOT channel_missing)
    AS eligible,
  ARRAY(SELECT DISTINCT customer_id FROM inserted) AS customer_ids,
  ARRAY(SELECT line FROM resolved WHERE customer_id IS NULL) AS no_customer,
  ARRAY(SELECT line FROM resolved WHERE customer_id IS NOT NULL AND channel_missing)
    AS no_channel
"""
        return self._statements[key]

    async def write(
        self, conn: asyncpg.Connection, rows: Sequence[Staged], rounds: int, context: Context
    ) -> Written:
        flags = (used(rows, 2), used(rows, 3), used(rows, 4), used(rows, 5))
        if not flags[0] and not flags[1]:
            flags = (False, True, *flags[2:])
        result = await conn.fetchrow(self._statement(flags, context.ordered))
        written = Written(imported=result["imported"], customer_ids=result["customer_ids"])
        if result["no_customer"] or result["no_channel"]:
            by_line = {row[0]: row for row in rows}
            for line in result["no_customer"]:
                field = "customer_id" if by_line[line][2] is not None else "customer_external_ref"
                written.problems.append((line, field, "no customer has this value"))
            for line in result["no_channel"]:
                field = "channel_id" if by_line[line][4] is not None else "channel_external_ref"
                written.problems.append((line, field, "no channel has this value"))
        skipped = result["eligible"] - result["imported"]
        if skipped:
            await self._classify_skipped(conn, written, context)
        return written

    async def _classify_skipped(
        self, conn: asyncpg.Connection, written: Written, context: Context
    ) -> None:
        """Rows whose external_id is stored: a duplicate of something stored before this import
        started, or a repeat of an earlier line of this file (stored since)."""
        failed = {line for line, _, _ in written.problems}
        found = await conn.fetch(
            f"""SELECT s.line, k.created_at >= $1 AS repeated
            FROM {STAGING} s JOIN interaction_external_ids k ON k.external_id = s.external_id
            WHERE s.external_id IS NOT NULL AND k.interaction_id <> s.id""",
            context.run_started,
        )
        for line, repeated in found:
            if line in failed:
                continue
            if repeated:
                reason = "repeats the external_id of an earlier line of this file"
                written.problems.append((line, "external_id", reason))
            else:
                written.duplicates += 1

"""Customers, channels and tickets: upserts by external reference in two statements per round
(insert the new records, then update the stored ones with the values the file gives), so a
record another transaction inserted meanwhile is updated rather than lost. Values a file does
not give keep what is stored."""

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

import asyncpg

from services.core.imports.formats import Values
from services.core.imports.load import (
    STAGING,
    Context,
    Loader,
    Staged,
    Written,
    channel_join,
    customer_join,
    used,
)
from services.core.imports.values import dump_json
from services.core.models.base import new_id
from services.core.models.imports import ImportKind


def _resolve_statement(
    customer: tuple[bool, bool] | None, channel: tuple[bool, bool], archived: bool
) -> str:
    """Finds the customer and channel each staged row of a round names, writes their ids into
    the staging table, and answers the rows naming ones that do not exist (or are archived)."""
    selects, sets, failing = ["s.line"], [], []
    joins = ""
    if customer is not None:
        customer_joins, customer_id, customer_channel = customer_join(*customer)
        joins += customer_joins
        selects += [f"{customer_id} AS customer", f"{customer_channel} AS customer_channel"]
        sets += ["customer_id = r.customer", "customer_channel = r.customer_channel"]
        failing.append("customer IS NULL")
    else:
        selects.append("true AS customer")
    channel_joins, channel_id = channel_join(*channel)
    joins += " " + channel_joins
    named = "(s.channel_id IS NOT NULL OR s.channel_ref IS NOT NULL)"
    selects += [f"{channel_id} AS channel", f"{named} AS channel_named"]
    if archived and any(channel):
        alias = "coalesce(hi.archived_at, hr.archived_at)" if all(channel) else "h.archived_at"
        selects.append(f"{alias} IS NOT NULL AS channel_archived")
    else:
        selects.append("false AS channel_archived")
    sets.append("channel_id = r.channel")
    failing.append("channel_named AND (channel IS NULL OR channel_archived)")
    return f"""
WITH r AS MATERIALIZED (
  SELECT {", ".join(selects)} FROM {STAGING} s {joins} WHERE s.round = $1
),
fixed AS (UPDATE {STAGING} s SET {", ".join(sets)} FROM r WHERE s.line = r.line)
SELECT line, customer IS NULL AS no_customer, channel IS NULL AS no_channel
FROM r WHERE {" OR ".join(failing)}
"""


def _changed(table_alias: str, assignments: dict[str, str]) -> str:
    """The WHERE clause that skips rows the assignments would leave as they are: an unchanged
    record keeps its version and writes no row version."""
    stored = ", ".join(f"{table_alias}.{name}" for name in assignments)
    return f"({stored}) IS DISTINCT FROM ({', '.join(assignments.values())})"


def _keep_stored(names: Sequence[str]) -> dict[str, str]:
    return {name: f"coalesce(s.{name}, t.{name})" for name in names}


class UpsertLoader(Loader):
    """Customers, channels, tickets: one record per key, new ones inserted, stored ones updated
    with the values the file gives. A key repeated within a batch goes to the next round, so
    rows apply in file order, as if upserted one by one."""

    table: ClassVar[str]
    key: ClassVar[str]
    sources: ClassVar[dict[str, str]] = {}
    """Staging column -> file column, where the names differ."""
    customer: ClassVar[bool] = False
    archived_channels: ClassVar[bool] = False
    insert: ClassVar[str]
    update: ClassVar[str]
    new_needs: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(field, SQL test on the staged row) for rows that cannot create a record."""
    resource: ClassVar[str]
    upsert = True

    def stage(self, line: int, round_: int, row: Values, context: Context) -> Staged:
        values: list[Any] = [line]
        for name, type_ in self.columns:
            if name == "round":
                values.append(round_)
            elif name == "id":
                values.append(new_id())
            elif type_ == "jsonb":
                value = row.get(name)
                values.append(None if value is None else dump_json(value))
            else:
                values.append(row.get(self.sources.get(name, name)))
        return tuple(values)

    async def write(
        self, conn: asyncpg.Connection, rows: Sequence[Staged], rounds: int, context: Context
    ) -> Written:
        written = Written()
        names = self.column_names()
        round_at, id_at = names.index("round"), names.index("id")
        ids: set[uuid.UUID] = set()
        for round_ in range(rounds):
            mine = [row for row in rows if row[round_at] == round_]
            await self._resolve(conn, mine, names, round_, written)
            inserted = await conn.fetch(self.insert, round_)
            updated = await conn.fetch(self.update, round_)
            line_of = {row[id_at]: row[0] for row in mine}
            done = [line_of[r["id"]] for r in inserted] + [r["line"] for r in updated]
            await self._classify(conn, round_, done, written)
            written.imported += len(done)
            ids.update(r["id"] for r in inserted)
            ids.update(r["id"] for r in updated)
            await self.after_round(conn, inserted, updated, written)
        self.touched(sorted(ids), written)
        return written

    async def _resolve(
        self,
        conn: asyncpg.Connection,
        rows: Sequence[Staged],
        names: list[str],
        round_: int,
        written: Written,
    ) -> None:
        def given(name: str) -> bool:
            return name in names and used(rows, names.index(name))

        channel = (given("channel_id"), given("channel_ref"))
        customer = None
        if self.customer:
            customer = (given("customer_id"), given("customer_ref") or not given("customer_id"))
        if customer is None and not any(channel):
            return
        failing = await conn.fetch(
            _resolve_statement(customer, channel, self.archived_channels), round_
        )
        if not failing:
            return
        by_line = {row[0]: row for row in rows}

        def named_by_id(line: int, column: str) -> bool:
            return column in names and by_line[line][names.index(column)] is not None

        for line, no_customer, no_channel in failing:
            if no_customer:
                by_id = named_by_id(line, "customer_id")
                field = "customer_id" if by_id else "customer_external_ref"
                written.problems.append((line, field, "no customer has this value"))
            else:
                by_id = named_by_id(line, "channel_id")
                field = "channel_id" if by_id else "channel_external_ref"
                reason = "no channel has this value" if no_channel else "the channel is archived"
                written.problems.append((line, field, reason))
        await conn.execute(
            f"DELETE FROM {STAGING} WHERE line = ANY($1::bigint[])", [f[0] for f in failing]
        )

    async def _classify(
        self, conn: asyncpg.Connection, round_: int, done: list[int], written: Written
    ) -> None:
        """Rows that neither created nor changed a record: unchanged ones are duplicates of what
        is stored; the others lacked what a new record needs."""
        needs = "".join(f", {test} AS {field}_missing" for field, test in self.new_needs)
        rest = await conn.fetch(
            f"""SELECT s.line, t.id IS NOT NULL AS stored{needs}
            FROM {STAGING} s LEFT JOIN {self.table} t ON t.{self.key} = s.{self.key}
            WHERE s.round = $1 AND NOT s.line = ANY($2::bigint[])""",
            round_,
            done,
        )
        for row in rest:
            if row["stored"]:
                written.duplicates += 1
                continue
            missing = [field for field, _ in self.new_needs if row[f"{field}_missing"]]
            if missing:
                for field in missing:
                    written.problems.append(
                        (row["line"], field, f"is required for a new {self.resource}")
                    )
            else:  # inserted by another transaction and deleted again meanwhile
                written.problems.append(
                    (row["line"], self.key, "changed meanwhile; import it again")
                )

    async def after_round(
        self,
        conn: asyncpg.Connection,
        inserted: list[asyncpg.Record],
        updated: list[asyncpg.Record],
        written: Written,
    ) -> None:
        return None

    def touched(self, ids: list[uuid.UUID], written: Written) -> None:
        """Note in `written` the customers the batch wrote (`ids` are the records it wrote),
        for the run's recompute."""
        return None


_CUSTOMER_FIELDS = (
    "name",
    "email",
    "phone",
    "address",
    "owner",
    "channel_id",
    "value_tier",
    "lifecycle_stage",
    "tags",
    "birthday",
    "contract_end",
    "notes",
)
_CUSTOMER_SET = {
    **_keep_stored(_CUSTOMER_FIELDS),
    "attributes": "t.attributes || coalesce(s.attributes, '{}')",
}


class CustomerLoader(UpsertLoader):
    kind = ImportKind.customers
    table = "customers"
    key = "external_ref"
    resource = "customer"
    archived_channels = True
    sources = {"channel_ref": "channel_external_ref"}
    columns = (
        ("round", "integer"),
        ("id", "uuid"),
        ("external_ref", "text"),
        ("name", "text"),
        ("email", "text"),
        ("phone", "text"),
        ("address", "text"),
        ("owner", "text"),
        ("channel_id", "uuid"),
        ("channel_ref", "text"),
        ("value_tier", "text"),
        ("lifecycle_stage", "text"),
        ("tags", "text[]"),
        ("attributes", "jsonb"),
        ("birthday", "date"),
        ("contract_end", "date"),
        ("notes", "text"),
    )
    new_needs = (("name", "s.name IS NULL"),)
    insert = f"""
INSERT INTO customers (id, external_ref, name, email, phone, address, owner, channel_id,
  value_tier, lifecycle_stage, tags, attributes, birthday, contract_end, notes)
SELECT s.id, s.external_ref, s.name, s.email, s.phone, s.address, s.owner, s.channel_id,
  s.value_tier, coalesce(s.lifecycle_stage, 'onboarding'), coalesce(s.tags, '{{}}'),
  coalesce(s.attributes, '{{}}'), s.birthday, s.contract_end, s.notes
FROM {STAGING} s WHERE s.round = $1 AND s.name IS NOT NULL
ON CONFLICT (external_ref) DO NOTHING
RETURNING id, channel_id
"""
    update = f"""
UPDATE customers t SET {", ".join(f"{k} = {e}" for k, e in _CUSTOMER_SET.items())},
  version = t.version + 1, updated_at = now()
FROM {STAGING} s JOIN customers old ON old.external_ref = s.external_ref
WHERE s.round = $1 AND t.id = old.id AND old.id <> s.id AND {_changed("t", _CUSTOMER_SET)}
RETURNING t.id, s.line, t.channel_id, old.channel_id AS channel_before
"""

    async def after_round(
        self,
        conn: asyncpg.Connection,
        inserted: list[asyncpg.Record],
        updated: list[asyncpg.Record],
        written: Written,
    ) -> None:
        """Channel membership history, as the API keeps it: a customer that moved closes its
        open membership and opens one in its new channel."""
        moves = [(r["id"], r["channel_id"]) for r in inserted if r["channel_id"] is not None]
        moves += [
            (r["id"], r["channel_id"]) for r in updated if r["channel_id"] != r["channel_before"]
        ]
        if not moves:
            return
        customers = [customer for customer, _ in moves]
        await conn.execute(
            "UPDATE customer_channel_memberships SET ended_at = now() "
            "WHERE customer_id = ANY($1::uuid[]) AND ended_at IS NULL",
            customers,
        )
        await conn.execute(
            "INSERT INTO customer_channel_memberships (customer_id, channel_id, started_at) "
            "SELECT c, h, now() FROM unnest($1::uuid[], $2::uuid[]) AS m(c, h) "
            "WHERE h IS NOT NULL",
            customers,
            [channel for _, channel in moves],
        )

    def touched(self, ids: list[uuid.UUID], written: Written) -> None:
        written.customer_ids = ids


_CHANNEL_FIELDS = (
    "name",
    "type",
    "tier",
    "region",
    "owner",
    "status",
    "contract_start",
    "contract_end",
    "tags",
    "notes",
)
_CHANNEL_SET = {
    **_keep_stored(_CHANNEL_FIELDS),
    "attributes": "t.attributes || coalesce(s.attributes, '{}')",
}


class ChannelLoader(UpsertLoader):
    kind = ImportKind.channels
    table = "channels"
    key = "external_ref"
    resource = "channel"
    columns = (
        ("round", "integer"),
        ("id", "uuid"),
        ("external_ref", "text"),
        ("name", "text"),
        ("type", "text"),
        ("tier", "text"),
        ("region", "text"),
        ("owner", "text"),
        ("status", "text"),
        ("contract_start", "date"),
        ("contract_end", "date"),
        ("tags", "text[]"),
        ("attributes", "jsonb"),
        ("notes", "text"),
    )
    new_needs = (("name", "s.name IS NULL"), ("type", "s.type IS NULL"))
    insert = f"""
INSERT INTO channels (id, external_ref, name, type, tier, region, owner, status,
  contract_start, contract_end, tags, attributes, notes)
SELECT s.id, s.external_ref, s.name, s.type, s.tier, s.region, s.owner,
  coalesce(s.status, 'active'), s.contract_start, s.contract_end, coalesce(s.tags, '{{}}'),
  coalesce(s.attributes, '{{}}'), s.notes
FROM {STAGING} s WHERE s.round = $1 AND s.name IS NOT NULL AND s.type IS NOT NULL
ON CONFLICT (external_ref) DO NOTHING
RETURNING id
"""
    update = f"""
UPDATE channels t SET {", ".join(f"{k} = {e}" for k, e in _CHANNEL_SET.items())},
  version = t.version + 1, updated_at = now()
FROM {STAGING} s
WHERE s.round = $1 AND t.external_ref = s.external_ref AND t.id <> s.id
  AND {_changed("t", _CHANNEL_SET)}
RETURNING t.id, s.line
"""


_DONE = "('resolved', 'closed')"
_TICKET_STATUS = "coalesce(s.status, t.status)"
_TICKET_SET = {
    "customer_id": "s.customer_id",
    "channel_id": "coalesce(s.channel_id, t.channel_id)",
    "subject": "s.subject",
    "kind": "s.kind",
    **_keep_stored(
        (
            "description",
            "priority",
            "status",
            "assignee",
            "tags",
            "resolution",
            "satisfaction",
            "created_at",
            "first_responded_at",
        )
    ),
    # As the API stamps them: resolving sets resolved_at, closing also closed_at, reopening
    # clears both; times the file gives win.
    "resolved_at": f"CASE WHEN {_TICKET_STATUS} IN {_DONE} "
    "THEN coalesce(s.resolved_at, t.resolved_at, s.closed_at, now()) END",
    "closed_at": f"CASE WHEN {_TICKET_STATUS} = 'closed' "
    "THEN coalesce(s.closed_at, t.closed_at, now()) END",
}


class TicketLoader(UpsertLoader):
    kind = ImportKind.tickets
    table = "tickets"
    key = "external_id"
    resource = "ticket"
    customer = True
    sources = {"customer_ref": "customer_external_ref", "channel_ref": "channel_external_ref"}
    columns = (
        ("round", "integer"),
        ("id", "uuid"),
        ("external_id", "text"),
        ("customer_id", "uuid"),
        ("customer_ref", "text"),
        ("customer_channel", "uuid"),
        ("channel_id", "uuid"),
        ("channel_ref", "text"),
        ("subject", "text"),
        ("description", "text"),
        ("kind", "text"),
        ("priority", "text"),
        ("status", "text"),
        ("assignee", "text"),
        ("tags", "text[]"),
        ("resolution", "text"),
        ("satisfaction", "smallint"),
        ("created_at", "timestamptz"),
        ("first_responded_at", "timestamptz"),
        ("resolved_at", "timestamptz"),
        ("closed_at", "timestamptz"),
    )
    insert = f"""
INSERT INTO tickets (id, external_id, customer_id, channel_id, subject, description, kind,
  priority, status, assignee, tags, resolution, satisfaction, created_at, updated_at,
  first_responded_at, resolved_at, closed_at)
SELECT s.id, s.external_id, s.customer_id, coalesce(s.channel_id, s.customer_channel),
  s.subject, s.description, s.kind, coalesce(s.priority, 'normal'), coalesce(s.status, 'open'),
  s.assignee, coalesce(s.tags, '{{}}'), s.resolution, s.satisfaction,
  coalesce(s.created_at, now()), now(), s.first_responded_at,
  CASE WHEN s.status IN {_DONE} THEN coalesce(s.resolved_at, s.closed_at, now()) END,
  CASE WHEN s.status = 'closed' THEN coalesce(s.closed_at, now()) END
FROM {STAGING} s WHERE s.round = $1
ON CONFLICT (external_id) DO NOTHING
RETURNING id, customer_id
"""
    update = f"""
UPDATE tickets t SET {", ".join(f"{k} = {e}" for k, e in _TICKET_SET.items())},
  version = t.version + 1, updated_at = now()
FROM {STAGING} s
WHERE s.round = $1 AND t.external_id = s.external_id AND t.id <> s.id
  AND {_changed("t", _TICKET_SET)}
RETURNING t.id, s.line, t.customer_id
"""

    async def after_round(
        self,
        conn: asyncpg.Connection,
        inserted: list[asyncpg.Record],
        updated: list[asyncpg.Record],
        written: Written,
    ) -> None:
        written.customer_ids += [r["customer_id"] for r in (*inserted, *updated)]

    def touched(self, ids: list[uuid.UUID], written: Written) -> None:
        written.customer_ids = sorted(set(written.customer_ids))

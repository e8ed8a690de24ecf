"""Batch ingest, the throughput path: items are checked one by one in Python, then every
lookup and the insert are one statement each for the whole batch."""

import json
import uuid
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import String, Text, any_, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from services.api import references
from services.api.interactions.schemas import InteractionCreate
from services.core import audit, events
from services.core.models import Interaction
from services.core.models.base import new_id

RESOURCE = "interaction_batch"

_item = TypeAdapter(InteractionCreate)
_table = Interaction.metadata.tables[Interaction.__tablename__]
_COLUMNS = (
    "id",
    "customer_id",
    "channel_id",
    "kind",
    "occurred_at",
    "amount",
    "currency",
    "satisfaction",
    "nps",
    "external_id",
    "summary",
    "attributes",
)


def _insert_statement() -> ReturningInsert[tuple[uuid.UUID]]:
    """One array parameter per column, unnested into rows: the statement and its plan stay the
    same whatever the batch size, and asyncpg encodes arrays without per-row Python work."""
    as_text = {"kind": String(), "attributes": Text()}
    arrays = [bindparam(c, type_=ARRAY(as_text.get(c, _table.c[c].type))) for c in _COLUMNS]
    rows = func.unnest(*arrays).table_valued(*_COLUMNS).render_derived()
    values = [cast(rows.c[c], JSONB) if c == "attributes" else rows.c[c] for c in _COLUMNS]
    return (
        insert(_table)
        .from_select(_COLUMNS, select(*values))
        .on_conflict_do_nothing(index_elements=[_table.c.external_id])
        .returning(_table.c.id)
    )


_insert = _insert_statement()
EXTERNAL_ID = _COLUMNS.index("external_id")


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # integers beyond 64 bits are valid JSON all the same
        return json.dumps(value)


def _error(index: int, field: str, message: str, type_: str) -> dict[str, Any]:
    return {
        "index": index,
        "status": "error",
        "id": None,
        "errors": [{"field": f"items.{index}.{field}", "message": message, "type": type_}],
    }


def _invalid(index: int, exc: ValidationError) -> dict[str, Any]:
    errors = [
        {
            "field": ".".join(("items", str(index), *(str(p) for p in e["loc"]))),
            "message": e["msg"],
            "type": e["type"],
        }
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return {"index": index, "status": "error", "id": None, "errors": errors}


def _parse(items: list[Any]) -> tuple[list[tuple[int, InteractionCreate]], list[dict[str, Any]]]:
    """Items that pass their own checks, and the error results of the others."""
    parsed: list[tuple[int, InteractionCreate]] = []
    failed: list[dict[str, Any]] = []
    first_with: dict[str, int] = {}
    for index, raw in enumerate(items):
        try:
            item = _item.validate_python(raw)
        except ValidationError as exc:
            failed.append(_invalid(index, exc))
            continue
        if item.external_id is not None:
            first = first_with.setdefault(item.external_id, index)
            if first != index:
                message = f"repeats the external_id of item {first}"
                failed.append(_error(index, "external_id", message, "duplicate"))
                continue
        parsed.append((index, item))
    return parsed, failed


async def ingest(
    session: AsyncSession, actor: audit.Actor, items: list[Any], default_currency: str
) -> dict[str, Any]:
    """The batch result as plain data (see InteractionBatchResult), ready to serialise."""
    parsed, results = _parse(items)
    channels, by_ref = await references.customers(
        session,
        {i.customer_id for _, i in parsed if i.customer_id is not None},
        {i.customer_external_ref for _, i in parsed if i.customer_external_ref is not None},
    )
    named_channels = {i.channel_id for _, i in parsed if i.channel_id is not None}
    known_channels = await references.existing_channels(session, named_channels)

    rows: list[tuple[Any, ...]] = []
    indexes: list[int] = []
    for index, item in parsed:
        customer_id = item.customer_id or by_ref.get(item.customer_external_ref or "")
        if customer_id is None or customer_id not in channels:
            field = "customer_id" if item.customer_id else "customer_external_ref"
            results.append(_error(index, field, "no customer has this value", "not_found"))
            continue
        if item.channel_id is not None and item.channel_id not in known_channels:
            results.append(_error(index, "channel_id", "no channel has this id", "not_found"))
            continue
        amount = item.amount
        rows.append(
            (
                new_id(),
                customer_id,
                item.channel_id or channels[customer_id],
                item.kind,
                item.occurred_at,
                amount,
                item.currency or (default_currency if amount is not None else None),
                item.satisfaction,
                item.nps,
                item.external_id,
                item.summary,
                _json(item.attributes),
            )
        )
        indexes.append(index)

    inserted: set[uuid.UUID] = set()
    if rows:
        arrays = dict(
            zip(_COLUMNS, (list(column) for column in zip(*rows, strict=True)), strict=True)
        )
        inserted.update(await session.scalars(_insert, arrays))
    stored = await _stored_ids(session, [r[EXTERNAL_ID] for r in rows if r[0] not in inserted])
    created_ids: list[uuid.UUID] = []
    customer_ids: set[uuid.UUID] = set()
    for index, row in zip(indexes, rows, strict=True):
        if row[0] in inserted:
            created_ids.append(row[0])
            customer_ids.add(row[1])
            results.append({"index": index, "status": "created", "id": row[0], "errors": []})
        elif (existing := stored.get(row[EXTERNAL_ID])) is not None:
            results.append({"index": index, "status": "duplicate", "id": existing, "errors": []})
        else:  # the stored one was deleted between the two statements
            results.append(_error(index, "external_id", "changed meanwhile; retry", "conflict"))
    results.sort(key=lambda r: int(r["index"]))

    duplicates = sum(1 for r in results if r["status"] == "duplicate")
    counts = {
        "created": len(created_ids),
        "duplicates": duplicates,
        "errors": len(items) - len(created_ids) - duplicates,
    }
    if created_ids:
        await events.emit(session, events.INTERACTIONS_CREATED, created_ids, customer_ids)
        after = {**counts, "ids": [str(i) for i in created_ids]}
        await audit.record(session, actor, "create", RESOURCE, None, None, after)
    return {"results": results, **counts}


async def _stored_ids(session: AsyncSession, external_ids: list[str]) -> dict[str, uuid.UUID]:
    """Ids of the stored interactions that made these items no-ops."""
    if not external_ids:
        return {}
    query = select(Interaction.external_id, Interaction.id).where(
        Interaction.external_id == any_(bindparam("ext", external_ids, type_=ARRAY(String())))
    )
    return {row.external_id: row.id for row in await session.execute(query)}

"""Batch ingest, the throughput path: items are checked one by one in Python, then every
lookup and the insert are one statement each for the whole batch."""

import uuid
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.api import references
from services.api.interactions.months import Months
from services.api.interactions.schemas import InteractionCreate
from services.api.interactions.service import row_of
from services.core import audit
from services.core import interactions as stored

RESOURCE = "interaction_batch"
OCCURRED_AT = stored.NAMES.index("occurred_at")

_item = TypeAdapter(InteractionCreate)


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
    session: AsyncSession,
    actor: audit.Actor,
    items: list[Any],
    default_currency: str,
    months: Months,
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
        rows.append(row_of(item, customer_id, channels[customer_id], default_currency))
        indexes.append(index)

    await months.ensure([row[OCCURRED_AT] for row in rows])
    inserted = await stored.insert(session, rows)
    existing = await stored.stored_ids(
        session, [r[stored.EXTERNAL_ID] for r in rows if r[0] not in inserted]
    )
    created_ids: list[uuid.UUID] = []
    for index, row in zip(indexes, rows, strict=True):
        if row[0] in inserted:
            created_ids.append(row[0])
            results.append({"index": index, "status": "created", "id": row[0], "errors": []})
        elif (known := existing.get(row[stored.EXTERNAL_ID])) is not None:
            results.append({"index": index, "status": "duplicate", "id": known, "errors": []})
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
        after = {**counts, "ids": [str(i) for i in created_ids]}
        await audit.record(session, actor, "create", RESOURCE, None, None, after)
    return {"results": results, **counts}

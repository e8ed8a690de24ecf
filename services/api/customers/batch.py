"""Batch upsert by `external_ref`: per-item validation, then set-based SQL for the valid items."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Table, func, literal_column, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.customers import service
from services.api.customers.schemas import (
    BatchItemResult,
    BatchResult,
    BatchStatus,
    CustomerCreate,
    CustomerUpsert,
)
from services.api.problems import ProblemField
from services.core import audit
from services.core.errors import FieldError
from services.core.models import Customer
from services.core.models.base import new_id

ITEM = TypeAdapter(CustomerUpsert)
FIELDS = tuple(CustomerCreate.model_fields)
CUSTOMERS = cast(Table, Customer.__table__)


@dataclass
class _Item:
    index: int
    status: BatchStatus = "error"
    external_ref: str | None = None
    id: uuid.UUID | None = None
    errors: list[FieldError] = field(default_factory=list)

    def fail(self, loc: Sequence[int | str], message: str, type_: str) -> None:
        name = ".".join(str(part) for part in ("items", self.index, *loc))
        self.errors.append(FieldError(name, message, type_))

    def result(self) -> BatchItemResult:
        return BatchItemResult(
            index=self.index,
            status=self.status,
            id=self.id,
            external_ref=self.external_ref,
            errors=[ProblemField(**e.as_dict()) for e in self.errors],
        )


async def upsert(session: AsyncSession, actor: audit.Actor, raw: Sequence[object]) -> BatchResult:
    items = [_Item(i) for i in range(len(raw))]
    valid = _validate(raw, items)
    existing = await _lock_existing(session, list(valid))
    rows = {ref: _merged(item, existing.get(ref)) for ref, (_, item) in valid.items()}

    moving = {ref: row["channel_id"] for ref, row in rows.items() if _moves(row, existing.get(ref))}
    problems = await service.channel_problems(session, {c for c in moving.values() if c})
    for ref, channel in moving.items():
        if channel in problems:
            items[valid[ref][0]].fail(["channel_id"], problems[channel], "channel")
            del rows[ref]

    written = await _write(session, list(rows.values()))
    moves: list[tuple[uuid.UUID, uuid.UUID | None]] = []
    changes: list[tuple[object | None, dict[str, Any] | None, dict[str, Any] | None]] = []
    for ref, after in written.items():
        before = existing.get(ref)
        if _moves(after, before):
            moves.append((after["id"], after["channel_id"]))
        old = None if before is None else service.snapshot(before)
        changes.append((after["id"], old, service.snapshot(after)))
        items[valid[ref][0]].status = "created" if after["inserted"] else "updated"
    await service.move_channels(session, moves)
    await audit.record_many(session, actor, "upsert", service.RESOURCE, changes)

    ids = {ref: row["id"] for ref, row in existing.items()}
    ids.update({ref: row["id"] for ref, row in written.items()})
    unchanged = [ref for ref in rows if ref not in written]
    ids.update(await _ids_of(session, [ref for ref in unchanged if ref not in ids]))
    for ref in unchanged:
        items[valid[ref][0]].status = "unchanged"
    for ref in rows:
        items[valid[ref][0]].id = ids[ref]
    return _summary(items)


def _validate(raw: Sequence[object], items: list[_Item]) -> dict[str, tuple[int, CustomerUpsert]]:
    """The valid items by external_ref; the first of duplicates wins, later ones fail."""
    valid: dict[str, tuple[int, CustomerUpsert]] = {}
    for item, value in zip(items, raw, strict=True):
        try:
            parsed = ITEM.validate_python(value)
        except ValidationError as exc:
            for error in exc.errors():
                item.fail(error["loc"], error["msg"], error["type"])
            continue
        item.external_ref = parsed.external_ref
        first = valid.get(parsed.external_ref)
        if first is not None:
            item.fail(["external_ref"], f"repeats items.{first[0]}.external_ref", "duplicate")
            continue
        valid[parsed.external_ref] = (item.index, parsed)
    return valid


async def _lock_existing(session: AsyncSession, refs: list[str]) -> dict[str, dict[str, Any]]:
    if not refs:
        return {}
    result = await session.execute(
        select(CUSTOMERS)
        .where(CUSTOMERS.c.external_ref.in_(refs))
        .order_by(CUSTOMERS.c.id)
        .with_for_update()
    )
    return {row.external_ref: dict(row._mapping) for row in result}


def _merged(item: CustomerUpsert, stored: dict[str, Any] | None) -> dict[str, Any]:
    """The full row to write: omitted fields keep stored values, or take defaults when new."""
    if stored is None:
        return item.model_dump()
    return {**{name: stored[name] for name in FIELDS}, **item.model_dump(exclude_unset=True)}


def _moves(row: dict[str, Any], stored: dict[str, Any] | None) -> bool:
    if stored is None:
        return row["channel_id"] is not None
    return bool(row["channel_id"] != stored["channel_id"])


async def _write(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One INSERT ... ON CONFLICT for all rows; returns the rows it inserted or changed.
    Rows are sorted by external_ref so concurrent batches take locks in the same order."""
    if not rows:
        return {}
    rows = sorted(rows, key=lambda row: str(row["external_ref"]))
    stmt = insert(CUSTOMERS).values([{"id": new_id(), **row} for row in rows])
    updated = [name for name in FIELDS if name != "external_ref"]
    upsert_stmt = stmt.on_conflict_do_update(
        index_elements=[CUSTOMERS.c.external_ref],
        set_={
            **{name: stmt.excluded[name] for name in updated},
            "version": CUSTOMERS.c.version + 1,
            "updated_at": func.now(),
        },
        where=tuple_(*(CUSTOMERS.c[name] for name in updated)).is_distinct_from(
            tuple_(*(stmt.excluded[name] for name in updated))
        ),
    ).returning(*CUSTOMERS.c, literal_column("xmax = 0").label("inserted"))
    result = await session.execute(upsert_stmt)
    return {row.external_ref: dict(row._mapping) for row in result}


async def _ids_of(session: AsyncSession, refs: list[str]) -> dict[str, uuid.UUID]:
    # Only rows another transaction inserted after our lock, identical to the item: rare.
    if not refs:
        return {}
    result = await session.execute(
        select(CUSTOMERS.c.external_ref, CUSTOMERS.c.id).where(CUSTOMERS.c.external_ref.in_(refs))
    )
    return {row.external_ref: row.id for row in result}


def _summary(items: list[_Item]) -> BatchResult:
    counts = dict.fromkeys(("created", "updated", "unchanged", "error"), 0)
    for item in items:
        counts[item.status] += 1
    return BatchResult(
        results=[item.result() for item in items],
        created=counts["created"],
        updated=counts["updated"],
        unchanged=counts["unchanged"],
        errors=counts["error"],
    )

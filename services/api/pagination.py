"""Keyset pagination: an opaque cursor holds the sort key of the last row, so pages stay
stable while rows are inserted (no gaps, no repeats)."""

import base64
import binascii
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.core.errors import FieldError, InvalidInput

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=100, description="Items per page (1-100).")]
Cursor = Annotated[
    str | None, Query(description="`next_cursor` from the previous page; omit for the first.")
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


def _bad_cursor() -> InvalidInput:
    return InvalidInput(
        "The cursor is not one this list gave out.",
        [FieldError("query.cursor", "malformed or from another sort order", "cursor")],
    )


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "t" in value:
        return datetime.fromisoformat(value["t"])
    return value


def encode_cursor(sort: str, values: Sequence[Any]) -> str:
    raw = orjson.dumps([sort, [_encode_value(v) for v in values]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, values = orjson.loads(raw)
        if cursor_sort != sort or not isinstance(values, list):
            raise _bad_cursor()
        return [_decode_value(v) for v in values]
    except (ValueError, binascii.Error, TypeError, orjson.JSONDecodeError) as exc:
        raise _bad_cursor() from exc


def sort_query(default: str, allowed: Sequence[str]) -> Any:
    """A `sort` query parameter: a field name, `-` first for descending."""
    choices = ", ".join(f"`{a}`" for a in allowed)
    return Query(
        description=f"Sort by {choices}; prefix `-` for descending. Default `{default}`.",
        pattern="^-?(" + "|".join(allowed) + ")$",
    )


async def fetch_page(
    session: AsyncSession,
    query: Select[Any],
    sort: str,
    columns: dict[str, InstrumentedAttribute[Any]],
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """One page of ORM rows, ordered by the sort column then `id`, and the cursor after it."""
    rows = list((await session.scalars(_paginate(query, sort, columns, cursor, limit))).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(sort, [getattr(rows[-1], sort.lstrip("-")), rows[-1].id])


def _paginate(
    query: Select[Any],
    sort: str,
    columns: dict[str, InstrumentedAttribute[Any]],
    cursor: str | None,
    limit: int,
) -> Select[Any]:
    id_column = columns["id"]
    descending = sort.startswith("-")
    column = columns[sort.lstrip("-")]
    if cursor is not None:
        last_value, last_id = decode_cursor(cursor, sort)
        try:
            last_id = uuid.UUID(str(last_id))
        except ValueError as exc:
            raise _bad_cursor() from exc
        query = query.where(_after(column, id_column, last_value, last_id, descending))
    order = [column.desc(), id_column.desc()] if descending else [column.asc(), id_column.asc()]
    return query.order_by(*order).limit(limit + 1)


def _after(
    column: InstrumentedAttribute[Any],
    id_column: InstrumentedAttribute[Any],
    value: Any,
    last_id: uuid.UUID,
    descending: bool,
) -> ColumnElement[bool]:
    if value is None:
        raise _bad_cursor()
    if descending:
        return or_(column < value, and_(column == value, id_column < last_id))
    return or_(column > value, and_(column == value, id_column > last_id))

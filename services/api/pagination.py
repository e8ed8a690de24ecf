"""Keyset pagination: an opaque cursor holds the sort key of the last row, so pages stay
stable while rows are inserted (no gaps, no repeats)."""

import base64
import binascii
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Row, Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.core.errors import FieldError, InvalidInput

T = TypeVar("T")

# A sort key: a mapped column, or an expression such as `coalesce(score, -1)`.
SortColumn = InstrumentedAttribute[Any] | ColumnElement[Any]

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
    columns: Mapping[str, SortColumn],
    cursor: str | None,
    limit: int,
    id_type: Callable[[str], Any] = uuid.UUID,
) -> tuple[list[Any], str | None]:
    """One page of ORM rows, ordered by the sort column then `id`, and the cursor after it."""
    page = _paginate(query, sort, columns, cursor, limit, id_type)
    rows = list((await session.scalars(page)).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(sort, [getattr(rows[-1], sort.lstrip("-")), rows[-1].id])


async def fetch_rows(
    session: AsyncSession,
    query: Select[Any],
    sort: str,
    columns: Mapping[str, SortColumn],
    cursor: str | None,
    limit: int,
) -> tuple[list[Row[Any]], str | None]:
    """Like `fetch_page` for a query selecting several things (an entity and joined columns):
    whole rows come back, and the cursor is read from the sort key the query adds to each."""
    keyed = query.add_columns(
        columns[sort.lstrip("-")].label("cursor_key"), columns["id"].label("cursor_id")
    )
    rows = list((await session.execute(_paginate(keyed, sort, columns, cursor, limit))).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]._mapping
    return rows, encode_cursor(sort, [last["cursor_key"], last["cursor_id"]])


def _paginate(
    query: Select[Any],
    sort: str,
    columns: Mapping[str, SortColumn],
    cursor: str | None,
    limit: int,
    id_type: Callable[[str], Any] = uuid.UUID,
) -> Select[Any]:
    id_column = columns["id"]
    descending = sort.startswith("-")
    column = columns[sort.lstrip("-")]
    if cursor is not None:
        last_value, last_id = decode_cursor(cursor, sort)
        try:
            last_id = id_type(str(last_id))
        except ValueError as exc:
            raise _bad_cursor() from exc
        query = query.where(_after(column, id_column, last_value, last_id, descending))
    order = [column.desc(), id_column.desc()] if descending else [column.asc(), id_column.asc()]
    return query.order_by(*order).limit(limit + 1)


def _after(
    column: SortColumn,
    id_column: SortColumn,
    value: Any,
    last_id: Any,
    descending: bool,
) -> ColumnElement[bool]:
    if value is None or not _fits(column, value):
        raise _bad_cursor()
    if descending:
        return or_(column < value, and_(column == value, id_column < last_id))
    return or_(column > value, and_(column == value, id_column > last_id))


def _fits(column: SortColumn, value: Any) -> bool:
    """Whether a cursor's value can be compared with the column: a forged cursor must be a
    422, not a database error."""
    try:
        expected = column.type.python_type
    except NotImplementedError:
        return True
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, expected)

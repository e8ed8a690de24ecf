"""Health scores as the customers and channels resources show them: the current score, its
history, and the LEFT JOIN that puts a summary on every list item."""

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import Response
from sqlalchemy import ColumnElement, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.deps import json_response
from services.api.pagination import SortColumn, fetch_page, fetch_rows
from services.api.rows import RowReader, compile_sql
from services.api.scoring.schemas import (
    Band,
    ChannelHealthRead,
    CustomerHealthRead,
    HealthSummary,
)
from services.core.errors import FieldError, InvalidInput, NotFound
from services.core.models import (
    Channel,
    ChannelHealth,
    ChannelHealthHistory,
    Customer,
    CustomerHealth,
    CustomerHealthHistory,
)

HealthModel = type[CustomerHealth] | type[ChannelHealth]

# One round trip: the subject LEFT JOIN its score tells "no such customer" from "not scored".
_CUSTOMER_SQL = compile_sql(
    select(Customer.id.label("subject_id"), CustomerHealth)
    .outerjoin(CustomerHealth, CustomerHealth.customer_id == Customer.id)
    .where(Customer.id == bindparam("id"))
)
_CHANNEL_SQL = compile_sql(
    select(Channel.id.label("subject_id"), ChannelHealth)
    .outerjoin(ChannelHealth, ChannelHealth.channel_id == Channel.id)
    .where(Channel.id == bindparam("id"))
)


async def customer_health(rows: RowReader, customer_id: uuid.UUID) -> Response:
    row = await rows.fetchrow(_CUSTOMER_SQL, customer_id)
    return _current(row, "Customer", customer_id, CustomerHealthRead)


async def channel_health(rows: RowReader, channel_id: uuid.UUID) -> Response:
    row = await rows.fetchrow(_CHANNEL_SQL, channel_id)
    return _current(row, "Channel", channel_id, ChannelHealthRead)


def _current(
    row: Mapping[str, Any] | None,
    name: str,
    subject_id: uuid.UUID,
    schema: type[CustomerHealthRead] | type[ChannelHealthRead],
) -> Response:
    if row is None:
        raise NotFound(f"{name} {subject_id} does not exist.")
    if row["score"] is None:
        raise NotFound(
            f"{name} {subject_id} is not scored yet: its first score appears shortly after its "
            "first interaction, or after a recompute."
        )
    return json_response(schema, row, {})


Window = tuple[datetime | None, datetime | None]


async def customer_history(
    session: AsyncSession, customer_id: uuid.UUID, window: Window, cursor: str | None, limit: int
) -> tuple[list[CustomerHealthHistory], str | None]:
    history = CustomerHealthHistory
    query = _within(select(history).where(history.customer_id == customer_id), history, window)
    rows, next_cursor = await _page(session, query, history, cursor, limit)
    if not rows and cursor is None:
        await _require(session, Customer, customer_id)
    return rows, next_cursor


async def channel_history(
    session: AsyncSession, channel_id: uuid.UUID, window: Window, cursor: str | None, limit: int
) -> tuple[list[ChannelHealthHistory], str | None]:
    history = ChannelHealthHistory
    query = _within(select(history).where(history.channel_id == channel_id), history, window)
    rows, next_cursor = await _page(session, query, history, cursor, limit)
    if not rows and cursor is None:
        await _require(session, Channel, channel_id)
    return rows, next_cursor


HistoryModel = type[CustomerHealthHistory] | type[ChannelHealthHistory]


def _within(query: Select[Any], history: HistoryModel, window: Window) -> Select[Any]:
    """`since` inclusive, `until` exclusive, like every other time filter of the API."""
    since, until = window
    if since is not None and until is not None and until < since:
        raise InvalidInput(
            "until is earlier than since.",
            [FieldError("query.until", "before since", "value_error")],
        )
    if since is not None:
        query = query.where(history.as_of >= since)
    if until is not None:
        query = query.where(history.as_of < until)
    return query


async def _page(
    session: AsyncSession,
    query: Select[Any],
    history: HistoryModel,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """Newest first; `id` breaks ties between rows of the same `as_of`."""
    columns = {"as_of": history.as_of, "id": history.id}
    return await fetch_page(session, query, "-as_of", columns, cursor, limit, int)


async def _require(
    session: AsyncSession, model: type[Customer] | type[Channel], subject_id: uuid.UUID
) -> None:
    """An empty first page is a 404 only when the subject itself is missing: a page with rows
    proves it exists, so the common case costs no second query."""
    if await session.scalar(select(model.id).where(model.id == subject_id)) is None:
        raise NotFound(f"{model.__name__} {subject_id} does not exist.")


async def page_with_health(
    session: AsyncSession,
    query: Select[Any],
    health: HealthModel,
    on: ColumnElement[bool],
    scores: tuple[Band | None, float | None, float | None],
    sorts: Sequence[str],
    sort: str,
    cursor: str | None,
    limit: int,
) -> tuple[list[tuple[Any, HealthSummary | None]], str | None]:
    """One list page in one query: each entity of `query` with its current score summary, the
    page filterable by band and score range and sortable by score as well as by `sorts`."""
    entity = query.column_descriptions[0]["entity"]
    columns: dict[str, SortColumn] = {
        name: getattr(entity, name) for name in (*sorts, "id") if name != "score"
    }
    columns["score"] = _score_sort_key(health)
    query = filter_health(with_health(query, health, on), health, *scores)
    rows, next_cursor = await fetch_rows(session, query, sort, columns, cursor, limit)
    return [
        (row[0], HealthSummary.of(row.health_score, row.health_band, row.health_as_of))
        for row in rows
    ], next_cursor


def with_health(query: Select[Any], health: HealthModel, on: ColumnElement[bool]) -> Select[Any]:
    """The list query with each row's score summary columns (null when unscored)."""
    return query.add_columns(
        health.score.label("health_score"),
        health.band.label("health_band"),
        health.as_of.label("health_as_of"),
    ).outerjoin(health, on)


def _score_sort_key(health: HealthModel) -> ColumnElement[Any]:
    """Unscored rows sort as score -1: below every score, and never NULL for the cursor."""
    return func.coalesce(health.score, -1.0)


def filter_health(
    query: Select[Any],
    health: HealthModel,
    band: Band | None,
    score_min: float | None,
    score_max: float | None,
) -> Select[Any]:
    if score_min is not None and score_max is not None and score_max < score_min:
        raise InvalidInput(
            "score_max is below score_min.",
            [FieldError("query.score_max", "below score_min", "value_error")],
        )
    if band is not None:
        query = query.where(health.band == band.value)
    if score_min is not None:
        query = query.where(health.score >= score_min)
    if score_max is not None:
        query = query.where(health.score <= score_max)
    return query

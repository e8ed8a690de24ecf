import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Row, Select, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.customers.schemas import (
    CustomerCreate,
    CustomerListItem,
    CustomerRead,
    CustomerUpdate,
)
from services.api.deps import check_if_match
from services.api.scoring.health import page_with_health
from services.api.scoring.schemas import Band, HealthSummary
from services.api.search import contains
from services.core import audit
from services.core.db import load
from services.core.errors import FieldError, InvalidInput
from services.core.models import Channel, Customer, CustomerChannelMembership, CustomerHealth
from services.core.models.enums import LifecycleStage, ValueTier

SORTS = ("created_at", "updated_at", "name", "score")
RESOURCE = "customer"


@dataclass
class CustomerFilters:
    channel_id: uuid.UUID | None = None
    owner: str | None = None
    value_tier: ValueTier | None = None
    lifecycle_stage: LifecycleStage | None = None
    tag: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    q: str | None = None
    include_archived: bool = False
    band: Band | None = None
    score_min: float | None = None
    score_max: float | None = None

    def __post_init__(self) -> None:
        after, before = self.created_after, self.created_before
        if after is not None and before is not None and before < after:
            raise InvalidInput(
                "created_before is earlier than created_after.",
                [FieldError("query.created_before", "before created_after", "value_error")],
            )


def snapshot(customer: object) -> dict[str, Any]:
    """The customer as the API shows it; accepts an ORM object or a row mapping."""
    return CustomerRead.model_validate(customer).model_dump(mode="json")


async def get(
    session: AsyncSession, customer_id: uuid.UUID, *, for_update: bool = False
) -> Customer:
    return await load(session, Customer, customer_id, for_update=for_update)


async def list_(
    session: AsyncSession, filters: CustomerFilters, sort: str, cursor: str | None, limit: int
) -> tuple[list[CustomerListItem], str | None]:
    """One query for the page: customers LEFT JOIN their current score."""
    rows, next_cursor = await page_with_health(
        session,
        filtered(select(Customer), filters),
        CustomerHealth,
        CustomerHealth.customer_id == Customer.id,
        (filters.band, filters.score_min, filters.score_max),
        SORTS,
        sort,
        cursor,
        limit,
    )
    return [_list_item(entity, health) for entity, health in rows], next_cursor


def _list_item(entity: Customer, health: HealthSummary | None) -> CustomerListItem:
    item = CustomerListItem.model_validate(entity)
    item.health = health
    return item


def filtered(query: Select[Any], f: CustomerFilters) -> Select[Any]:
    if not f.include_archived:
        query = query.where(Customer.archived_at.is_(None))
    for column, value in (
        (Customer.channel_id, f.channel_id),
        (Customer.owner, f.owner),
        (Customer.value_tier, f.value_tier),
        (Customer.lifecycle_stage, f.lifecycle_stage),
    ):
        if value is not None:
            query = query.where(column == value)
    if f.tag is not None:
        query = query.where(Customer.tags.contains([f.tag]))
    if f.created_after is not None:
        query = query.where(Customer.created_at >= f.created_after)
    if f.created_before is not None:
        query = query.where(Customer.created_at < f.created_before)
    if f.q:
        query = query.where(or_(contains(Customer.name, f.q), contains(Customer.external_ref, f.q)))
    return query


async def channel_problems(
    session: AsyncSession, wanted: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Why each of `wanted` cannot take customers (missing or archived); one query for all.
    Usable channels are share-locked so they cannot be archived before this write commits."""
    ids = set(wanted)
    if not ids:
        return {}
    rows = (
        await session.execute(
            select(Channel.id, Channel.archived_at)
            .where(Channel.id.in_(ids))
            .with_for_update(read=True)
        )
    ).all()
    archived = {r.id for r in rows if r.archived_at is not None}
    found = {r.id for r in rows}
    problems = dict.fromkeys(archived, "the channel is archived")
    problems.update(dict.fromkeys(ids - found, "no channel has this id"))
    return problems


async def _require_channel(session: AsyncSession, channel_id: uuid.UUID) -> None:
    problem = (await channel_problems(session, [channel_id])).get(channel_id)
    if problem is not None:
        raise InvalidInput(
            f"channel_id {channel_id}: {problem}.",
            [FieldError("body.channel_id", problem, "channel")],
        )


async def move_channels(
    session: AsyncSession, moves: Sequence[tuple[uuid.UUID, uuid.UUID | None]]
) -> None:
    """Close the open membership of each customer and open one in its new channel (if any)."""
    if not moves:
        return
    membership = CustomerChannelMembership
    await session.execute(
        sa.update(membership)
        .where(
            membership.customer_id.in_([customer for customer, _ in moves]),
            membership.ended_at.is_(None),
        )
        .values(ended_at=func.now())
        .execution_options(synchronize_session=False)
    )
    opened = [
        {"customer_id": customer, "channel_id": channel, "started_at": func.now()}
        for customer, channel in moves
        if channel is not None
    ]
    if opened:
        await session.execute(insert(membership).values(opened))


async def channel_history(
    session: AsyncSession, customer_id: uuid.UUID
) -> Sequence[Row[uuid.UUID, str, datetime, datetime | None]]:
    await get(session, customer_id)
    membership = CustomerChannelMembership
    result = await session.execute(
        select(
            membership.channel_id,
            Channel.name.label("channel_name"),
            membership.started_at,
            membership.ended_at,
        )
        .join(Channel, Channel.id == membership.channel_id)
        .where(membership.customer_id == customer_id)
        .order_by(membership.started_at.desc(), membership.id.desc())
    )
    return result.all()


async def create(session: AsyncSession, actor: audit.Actor, data: CustomerCreate) -> Customer:
    if data.channel_id is not None:
        await _require_channel(session, data.channel_id)
    customer = Customer(**data.model_dump())
    session.add(customer)
    await session.flush()
    await session.refresh(customer)
    if customer.channel_id is not None:
        await move_channels(session, [(customer.id, customer.channel_id)])
    await audit.record(session, actor, "create", RESOURCE, customer.id, None, snapshot(customer))
    return customer


async def update(
    session: AsyncSession,
    actor: audit.Actor,
    customer_id: uuid.UUID,
    data: CustomerUpdate,
    if_match: str | None,
) -> Customer:
    customer = await get(session, customer_id, for_update=True)
    check_if_match(if_match, customer.version)
    changes = {
        name: value
        for name, value in data.model_dump(exclude_unset=True).items()
        if getattr(customer, name) != value
    }
    if not changes:
        return customer
    moved = "channel_id" in changes
    if moved and changes["channel_id"] is not None:
        await _require_channel(session, changes["channel_id"])
    before = snapshot(customer)
    for name, value in changes.items():
        setattr(customer, name, value)
    customer.version += 1
    customer.updated_at = func.now()
    await session.flush()
    await session.refresh(customer)
    if moved:
        await move_channels(session, [(customer.id, customer.channel_id)])
    await audit.record(session, actor, "update", RESOURCE, customer.id, before, snapshot(customer))
    return customer


async def archive(session: AsyncSession, actor: audit.Actor, customer_id: uuid.UUID) -> None:
    customer = await get(session, customer_id, for_update=True)
    if customer.archived_at is not None:
        return
    before = snapshot(customer)
    customer.archived_at = datetime.now(UTC)
    customer.version += 1
    customer.updated_at = func.now()
    await session.flush()
    await session.refresh(customer)
    await audit.record(session, actor, "archive", RESOURCE, customer.id, before, snapshot(customer))

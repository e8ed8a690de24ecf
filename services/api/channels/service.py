import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.channels.schemas import (
    ChannelCreate,
    ChannelListItem,
    ChannelRead,
    ChannelUpdate,
)
from services.api.deps import check_if_match
from services.api.scoring.health import page_with_health
from services.api.scoring.schemas import Band, HealthSummary
from services.api.search import contains
from services.core import audit
from services.core.db import load
from services.core.errors import FieldError, InvalidInput
from services.core.models import Channel, ChannelHealth
from services.core.models.enums import ChannelStatus, ChannelTier, ChannelType

SORTS = ("created_at", "updated_at", "name", "score")
RESOURCE = "channel"


@dataclass
class ChannelFilters:
    type: ChannelType | None = None
    tier: ChannelTier | None = None
    status: ChannelStatus | None = None
    region: str | None = None
    owner: str | None = None
    tag: str | None = None
    q: str | None = None
    include_archived: bool = False
    band: Band | None = None
    score_min: float | None = None
    score_max: float | None = None


def snapshot(channel: Channel) -> dict[str, Any]:
    return ChannelRead.model_validate(channel).model_dump(mode="json")


async def get(session: AsyncSession, channel_id: uuid.UUID, *, for_update: bool = False) -> Channel:
    return await load(session, Channel, channel_id, for_update=for_update)


async def list_(
    session: AsyncSession, filters: ChannelFilters, sort: str, cursor: str | None, limit: int
) -> tuple[list[ChannelListItem], str | None]:
    """One query for the page: channels LEFT JOIN their current score."""
    rows, next_cursor = await page_with_health(
        session,
        _filtered(select(Channel), filters),
        ChannelHealth,
        ChannelHealth.channel_id == Channel.id,
        (filters.band, filters.score_min, filters.score_max),
        SORTS,
        sort,
        cursor,
        limit,
    )
    return [_list_item(entity, health) for entity, health in rows], next_cursor


def _list_item(entity: Channel, health: HealthSummary | None) -> ChannelListItem:
    item = ChannelListItem.model_validate(entity)
    item.health = health
    return item


def _filtered(query: Select[Any], f: ChannelFilters) -> Select[Any]:
    if not f.include_archived:
        query = query.where(Channel.archived_at.is_(None))
    for column, value in (
        (Channel.type, f.type),
        (Channel.tier, f.tier),
        (Channel.status, f.status),
        (Channel.region, f.region),
        (Channel.owner, f.owner),
    ):
        if value is not None:
            query = query.where(column == value)
    if f.tag is not None:
        query = query.where(Channel.tags.contains([f.tag]))
    if f.q:
        query = query.where(or_(contains(Channel.name, f.q), contains(Channel.external_ref, f.q)))
    return query


async def create(session: AsyncSession, actor: audit.Actor, data: ChannelCreate) -> Channel:
    channel = Channel(**data.model_dump())
    session.add(channel)
    await session.flush()
    await session.refresh(channel)
    await audit.record(session, actor, "create", RESOURCE, channel.id, None, snapshot(channel))
    return channel


async def update(
    session: AsyncSession,
    actor: audit.Actor,
    channel_id: uuid.UUID,
    data: ChannelUpdate,
    if_match: str | None,
) -> Channel:
    channel = await get(session, channel_id, for_update=True)
    check_if_match(if_match, channel.version)
    before = snapshot(channel)
    changes = data.model_dump(exclude_unset=True)
    start = changes.get("contract_start", channel.contract_start)
    end = changes.get("contract_end", channel.contract_end)
    if start and end and end < start:
        raise InvalidInput(
            "contract_end is before contract_start.",
            [FieldError("body.contract_end", "before contract_start", "value_error")],
        )
    for name, value in changes.items():
        setattr(channel, name, value)
    channel.version += 1
    channel.updated_at = func.now()
    await session.flush()
    await session.refresh(channel)
    await audit.record(session, actor, "update", RESOURCE, channel.id, before, snapshot(channel))
    return channel


async def archive(session: AsyncSession, actor: audit.Actor, channel_id: uuid.UUID) -> None:
    channel = await get(session, channel_id, for_update=True)
    if channel.archived_at is not None:
        return
    before = snapshot(channel)
    channel.archived_at = datetime.now(UTC)
    channel.version += 1
    channel.updated_at = func.now()
    await session.flush()
    await session.refresh(channel)
    await audit.record(session, actor, "archive", RESOURCE, channel.id, before, snapshot(channel))

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api import references
from services.api.interactions.schemas import InteractionCreate, InteractionRead
from services.api.pagination import fetch_page
from services.core import audit, events
from services.core import interactions as stored
from services.core.db import load
from services.core.errors import Conflict, FieldError, InvalidInput
from services.core.models import Interaction, InteractionExternalId
from services.core.models.base import new_id
from services.core.models.enums import InteractionKind

SORTS = ("occurred_at", "created_at")
RESOURCE = "interaction"


@dataclass
class InteractionFilters:
    customer_id: uuid.UUID | None = None
    channel_id: uuid.UUID | None = None
    kind: InteractionKind | None = None
    external_id: str | None = None
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None


def snapshot(interaction: Interaction) -> dict[str, Any]:
    return InteractionRead.model_validate(interaction).model_dump(mode="json")


async def get(session: AsyncSession, interaction_id: uuid.UUID) -> Interaction:
    return await load(session, Interaction, interaction_id)


async def list_(
    session: AsyncSession, filters: InteractionFilters, sort: str, cursor: str | None, limit: int
) -> tuple[list[Interaction], str | None]:
    columns = {name: getattr(Interaction, name) for name in (*SORTS, "id")}
    query = filtered(select(Interaction), filters)
    return await fetch_page(session, query, sort, columns, cursor, limit)


def filtered(query: Select[Any], f: InteractionFilters) -> Select[Any]:
    for column, value in (
        (Interaction.customer_id, f.customer_id),
        (Interaction.channel_id, f.channel_id),
        (Interaction.kind, f.kind),
    ):
        if value is not None:
            query = query.where(column == value)
    if f.external_id is not None:
        query = query.where(stored.with_external_id(f.external_id))
    if f.occurred_after is not None:
        query = query.where(Interaction.occurred_at >= f.occurred_after)
    if f.occurred_before is not None:
        query = query.where(Interaction.occurred_at < f.occurred_before)
    return query


async def _resolve_customer(
    session: AsyncSession, data: InteractionCreate
) -> tuple[uuid.UUID, uuid.UUID | None]:
    """The customer's id and current channel; 422 naming the field when it does not exist."""
    ids = [data.customer_id] if data.customer_id else []
    refs = [data.customer_external_ref] if data.customer_external_ref else []
    channels, by_ref = await references.customers(session, ids, refs)
    customer_id = data.customer_id or by_ref.get(data.customer_external_ref or "")
    if customer_id is None or customer_id not in channels:
        field = "customer_id" if data.customer_id else "customer_external_ref"
        raise InvalidInput(
            "The customer does not exist.",
            [FieldError(f"body.{field}", "no customer has this value", "not_found")],
        )
    return customer_id, channels[customer_id]


def row_of(
    data: InteractionCreate,
    customer_id: uuid.UUID,
    customer_channel: uuid.UUID | None,
    default_currency: str,
) -> tuple[Any, ...]:
    """A new interaction's values in the order of services.core.interactions.COLUMNS."""
    amount = data.amount
    return (
        new_id(),
        customer_id,
        data.channel_id or customer_channel,
        data.kind,
        data.occurred_at,
        amount,
        data.currency or (default_currency if amount is not None else None),
        data.satisfaction,
        data.nps,
        data.external_id,
        data.summary,
        stored.attributes_json(data.attributes),
    )


async def create(
    session: AsyncSession, actor: audit.Actor, data: InteractionCreate, default_currency: str
) -> tuple[Interaction, bool]:
    """The new interaction and True, or the one already stored with its external_id and False."""
    customer_id, customer_channel = await _resolve_customer(session, data)
    if data.channel_id and not await references.existing_channels(session, [data.channel_id]):
        raise InvalidInput(
            "The channel does not exist.",
            [FieldError("body.channel_id", "no channel has this id", "not_found")],
        )
    row = row_of(data, customer_id, customer_channel, default_currency)
    if not await stored.insert(session, [row]):
        found = await session.scalar(
            select(Interaction).where(stored.with_external_id(data.external_id or ""))
        )
        if found is None:  # deleted between the two statements
            raise Conflict("The interaction changed while being stored; retry.")
        return found, False
    interaction = await session.scalar(
        select(Interaction).where(Interaction.id == row[0], Interaction.occurred_at == row[4])
    )
    assert interaction is not None
    await audit.record(
        session, actor, "create", RESOURCE, interaction.id, None, snapshot(interaction)
    )
    return interaction, True


async def delete_(session: AsyncSession, actor: audit.Actor, interaction_id: uuid.UUID) -> None:
    interaction = await get(session, interaction_id)
    before = snapshot(interaction)
    await session.execute(delete(Interaction).where(Interaction.id == interaction_id))
    if interaction.external_id is not None:
        await session.execute(
            delete(InteractionExternalId).where(
                InteractionExternalId.external_id == interaction.external_id
            )
        )
    await events.emit(
        session, events.INTERACTIONS_DELETED, [interaction_id], [interaction.customer_id]
    )
    await audit.record(session, actor, "delete", RESOURCE, interaction_id, before, None)

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.api import references
from services.api.interactions.schemas import InteractionCreate, InteractionRead
from services.api.pagination import fetch_page
from services.core import audit, events
from services.core.db import load
from services.core.errors import Conflict, FieldError, InvalidInput
from services.core.models import Interaction
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
        (Interaction.external_id, f.external_id),
    ):
        if value is not None:
            query = query.where(column == value)
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
    row = data.model_dump(exclude={"customer_external_ref"})
    row["customer_id"] = customer_id
    row["channel_id"] = data.channel_id or customer_channel
    if data.amount is not None and data.currency is None:
        row["currency"] = default_currency
    statement = (
        insert(Interaction)
        .values(row)
        .on_conflict_do_nothing(index_elements=[Interaction.external_id])
        .returning(Interaction)
    )
    interaction = await session.scalar(statement)
    if interaction is None:
        stored = await session.scalar(
            select(Interaction).where(Interaction.external_id == data.external_id)
        )
        if stored is None:  # deleted between the two statements
            raise Conflict("The interaction changed while being stored; retry.")
        return stored, False
    await events.emit(session, events.INTERACTIONS_CREATED, [interaction.id], [customer_id])
    await audit.record(
        session, actor, "create", RESOURCE, interaction.id, None, snapshot(interaction)
    )
    return interaction, True


async def delete_(session: AsyncSession, actor: audit.Actor, interaction_id: uuid.UUID) -> None:
    interaction = await get(session, interaction_id)
    before = snapshot(interaction)
    await session.execute(delete(Interaction).where(Interaction.id == interaction_id))
    await events.emit(
        session, events.INTERACTIONS_DELETED, [interaction_id], [interaction.customer_id]
    )
    await audit.record(session, actor, "delete", RESOURCE, interaction_id, before, None)

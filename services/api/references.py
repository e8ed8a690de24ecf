"""Set-based lookups of the customers and channels a write refers to: one query per batch."""

import uuid
from collections.abc import Collection

from sqlalchemy import String, any_, bindparam, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.models import Channel, Customer

# customer id -> its current channel id
CustomerChannels = dict[uuid.UUID, uuid.UUID | None]


async def customers(
    session: AsyncSession, ids: Collection[uuid.UUID], refs: Collection[str]
) -> tuple[CustomerChannels, dict[str, uuid.UUID]]:
    """The customers named by id or by external_ref, with their channels, in one query."""
    if not ids and not refs:
        return {}, {}
    query = select(Customer.id, Customer.external_ref, Customer.channel_id).where(
        or_(
            Customer.id == any_(bindparam("ids", list(ids), type_=ARRAY(UUID(as_uuid=True)))),
            Customer.external_ref == any_(bindparam("refs", list(refs), type_=ARRAY(String()))),
        )
    )
    channels: CustomerChannels = {}
    by_ref: dict[str, uuid.UUID] = {}
    for customer_id, external_ref, channel_id in await session.execute(query):
        channels[customer_id] = channel_id
        if external_ref is not None:
            by_ref[external_ref] = customer_id
    return channels, by_ref


async def existing_channels(session: AsyncSession, ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    if not ids:
        return set()
    query = select(Channel.id).where(
        Channel.id == any_(bindparam("ids", list(ids), type_=ARRAY(UUID(as_uuid=True))))
    )
    return set(await session.scalars(query))

"""Outbox event names and payloads, shared by the API (producer) and the scorer (consumer)."""

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.models import OutboxEvent

INTERACTIONS_CREATED = "interactions.created"
INTERACTIONS_DELETED = "interactions.deleted"
TICKETS_CHANGED = "tickets.changed"
TICKETS_DELETED = "tickets.deleted"


async def emit(
    session: AsyncSession,
    type_: str,
    ids: Iterable[uuid.UUID],
    customer_ids: Iterable[uuid.UUID],
    **extra: Any,
) -> None:
    """One outbox row for a whole write, in the caller's transaction: a batch costs one row."""
    payload = {
        "ids": [str(i) for i in ids],
        "customer_ids": sorted({str(c) for c in customer_ids}),
        **extra,
    }
    await session.execute(insert(OutboxEvent).values(type=type_, payload=payload))

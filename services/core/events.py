"""Outbox event names and payloads, shared by the API (producer) and the scorer (consumer)."""

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.logs import request_context
from services.core.models import OutboxEvent

INTERACTIONS_CREATED = "interactions.created"
INTERACTIONS_DELETED = "interactions.deleted"
TICKETS_CHANGED = "tickets.changed"
TICKETS_DELETED = "tickets.deleted"
# A job row was queued (ids = [job id]); the worker starts it. Names no customers, so the
# live rescoring of touched customers ignores it.
JOBS_REQUESTED = "jobs.requested"

# NOTIFY is per database and delivered on commit only: a rolled-back write wakes no relay.
OUTBOX_CHANNEL = "retention_outbox"


async def emit(
    session: AsyncSession,
    type_: str,
    ids: Iterable[uuid.UUID],
    customer_ids: Iterable[uuid.UUID],
    **extra: Any,
) -> None:
    """One outbox row for a whole write, in the caller's transaction: a batch costs one row,
    and the NOTIFY that wakes the relay rides in the same statement. The payload names the
    request being served, if any, so the worker's lines about the event name it too."""
    payload = {
        "ids": [str(i) for i in ids],
        "customer_ids": sorted({str(c) for c in customer_ids}),
        **request_context(),
        **extra,
    }
    row = insert(OutboxEvent).values(type=type_, payload=payload).returning(OutboxEvent.id)
    written = row.cte("written")
    await session.execute(select(func.pg_notify(OUTBOX_CHANNEL, "")).select_from(written))

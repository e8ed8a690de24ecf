"""The rows an import writes besides its data, in the same transaction: audit events, and the
outbox event of the recompute it queues when it finishes. Imports run on plain asyncpg
connections (for COPY), so these are the asyncpg forms of `events.emit` and `audit.record`,
writing the same rows."""

import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg

from services.core import events
from services.core.imports.values import dump_json
from services.core.logs import request_context

ACTOR = "import"

_EMIT = f"""
WITH written AS (INSERT INTO outbox_events (type, payload) VALUES ($1, $2::jsonb) RETURNING id)
SELECT pg_notify('{events.OUTBOX_CHANNEL}', '') FROM written
"""

_AUDIT = """
INSERT INTO audit_events (actor_name, action, resource_type, resource_id, after)
VALUES ($1, $2, $3, $4, $5::jsonb)
"""


async def emit(
    conn: asyncpg.Connection,
    type_: str,
    ids: Iterable[uuid.UUID],
    customer_ids: Iterable[uuid.UUID],
    **extra: Any,
) -> None:
    """One outbox row, shaped as `events.emit` shapes it."""
    payload = {
        "ids": [str(i) for i in ids],
        "customer_ids": sorted({str(c) for c in customer_ids}),
        **request_context(),
        **extra,
    }
    await conn.execute(_EMIT, type_, dump_json(payload))


async def audit(
    conn: asyncpg.Connection,
    action: str,
    resource_type: str,
    resource_id: object,
    after: dict[str, Any],
) -> None:
    await conn.execute(_AUDIT, ACTOR, action, resource_type, str(resource_id), dump_json(after))

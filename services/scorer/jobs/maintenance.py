"""Housekeeping jobs that keep tables from growing without bound."""

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import delete

from services.core import partitions
from services.core.config import Settings
from services.core.db import asyncpg_dsn, session_scope
from services.core.models import IdempotencyRecord


async def purge_idempotency_records(ctx: dict[str, Any]) -> int:
    """Drop stored create responses older than the replay window; safe to run twice."""
    settings: Settings = ctx["settings"]
    cutoff = datetime.now(UTC) - timedelta(hours=settings.idempotency_ttl_hours)
    async with session_scope(ctx["sessionmaker"]) as session:
        result = await session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)
        )
    return int(getattr(result, "rowcount", 0) or 0)


MAINTENANCE_LOCK_TIMEOUT = timedelta(seconds=2)
"""How long partition maintenance may wait for readers, who wait behind it meanwhile: months are
created three ahead and rows wait safely in the default partition, so an hourly run that
gives up loses nothing."""


async def maintain_partitions(ctx: dict[str, Any]) -> int:
    """Monthly partitions of interactions for the months ahead and for the rows that landed in
    the default partition; the number of partitions created. Safe to run twice or side by side
    (the database function serialises callers)."""
    settings: Settings = ctx["settings"]
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    try:
        return await partitions.maintain(conn, lock_timeout=MAINTENANCE_LOCK_TIMEOUT)
    finally:
        await conn.close()

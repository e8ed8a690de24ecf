"""Housekeeping jobs that keep tables from growing without bound."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete

from services.core.config import Settings
from services.core.db import session_scope
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

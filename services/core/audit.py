"""The audit trail: every write records who did what, with the resource before and after."""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    """Whoever makes a change: an API key, or the system itself (CLI, worker)."""

    id: uuid.UUID | None
    name: str
    request_id: str | None = None


SYSTEM = Actor(id=None, name="system")


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: object | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    await record_many(session, actor, action, resource_type, [(resource_id, before, after)])


async def record_many(
    session: AsyncSession,
    actor: Actor,
    action: str,
    resource_type: str,
    changes: list[tuple[object | None, dict[str, Any] | None, dict[str, Any] | None]],
) -> None:
    """One INSERT for a whole batch of changes."""
    if not changes:
        return
    await session.execute(
        insert(AuditEvent),
        [
            {
                "actor_id": actor.id,
                "actor_name": actor.name,
                "request_id": actor.request_id,
                "action": action,
                "resource_type": resource_type,
                "resource_id": None if rid is None else str(rid),
                "before": before,
                "after": after,
            }
            for rid, before, after in changes
        ],
    )

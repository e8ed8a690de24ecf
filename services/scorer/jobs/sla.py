"""The scheduled SLA check: open, running tickets whose due-soon mark or due time has passed are
marked warned or breached, announced to webhook subscribers and, when breached, rescored.

One statement finds and marks them, and the announcements and the outbox event are written in
the same transaction: a ticket is marked once, so a rerun (arq may run a job twice) announces
nothing twice. Paused tickets wait: their due times move when the pause ends.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core import events
from services.core.db import session_scope
from services.core.webhooks.publish import publish

CHECK_SLA = "check_sla"
DUE_SOON = "ticket.sla_due_soon"
BREACHED = "ticket.sla_breached"
BATCH = 5000
"""Tickets marked per run at most; any more are marked a minute later."""
TARGETS = ("first_response", "resolution")

# Breaching a target also marks it warned, so a ticket found past both marks at once (the
# worker was down) is announced as breached only. The first response is due only while there
# is none; a resolved ticket is past checking. FOR UPDATE SKIP LOCKED leaves a ticket that a
# request is changing to the next run, which sees its new state.
_MARK = text("""
WITH due AS (
  SELECT id,
    first_responded_at IS NULL AND NOT first_response_breached
      AND first_response_due_at <= :now AS first_response_breached,
    first_responded_at IS NULL AND NOT first_response_warned
      AND first_response_due_soon_at <= :now AND first_response_due_at > :now
      AS first_response_warned,
    resolution_due_at <= :now AS resolution_breached,
    NOT resolution_warned AND resolution_due_soon_at <= :now AND resolution_due_at > :now
      AS resolution_warned
  FROM tickets
  WHERE resolved_at IS NULL AND NOT resolution_breached AND paused_since IS NULL
    AND resolution_due_at IS NOT NULL
    AND (
      (first_responded_at IS NULL AND (
        (NOT first_response_breached AND first_response_due_at <= :now)
        OR (NOT first_response_warned AND first_response_due_soon_at <= :now)))
      OR resolution_due_at <= :now
      OR (NOT resolution_warned AND resolution_due_soon_at <= :now)
    )
  ORDER BY resolution_due_at
  LIMIT :batch
  FOR UPDATE SKIP LOCKED
)
UPDATE tickets t SET
  first_response_breached = t.first_response_breached OR d.first_response_breached,
  first_response_warned = t.first_response_warned OR d.first_response_breached
    OR d.first_response_warned,
  resolution_breached = t.resolution_breached OR d.resolution_breached,
  resolution_warned = t.resolution_warned OR d.resolution_breached OR d.resolution_warned,
  version = t.version + 1,
  updated_at = now()
FROM due d
WHERE t.id = d.id
RETURNING t.id, t.customer_id, t.channel_id, t.priority, t.assignee,
  t.first_response_due_at, t.resolution_due_at,
  d.first_response_breached AS first_response_breach, d.first_response_warned AS first_response_warn,
  d.resolution_breached AS resolution_breach, d.resolution_warned AS resolution_warn
""")


@dataclass(frozen=True)
class Marked:
    warned: int
    """Targets announced as due soon."""
    breached: int
    """Targets announced as breached."""
    tickets: int
    """Tickets changed."""


def ticket_data(row: Row[Any], target: str) -> dict[str, Any]:
    """What a `ticket.sla_*` webhook carries."""
    due_at: datetime = getattr(row, f"{target}_due_at")
    return {
        "ticket_id": str(row.id),
        "customer_id": str(row.customer_id),
        "channel_id": None if row.channel_id is None else str(row.channel_id),
        "target": target,
        "due_at": due_at.isoformat(),
        "priority": row.priority,
        "assignee": row.assignee,
        "link": f"/v1/tickets/{row.id}",
    }


async def mark_due(session: AsyncSession, now: datetime) -> Marked:
    """Mark, announce and (breaches) queue rescoring, in the caller's transaction."""
    rows: Sequence[Row[Any]] = (await session.execute(_MARK, {"now": now, "batch": BATCH})).all()
    warned: list[tuple[uuid.UUID, dict[str, Any]]] = []
    breached: list[tuple[uuid.UUID, dict[str, Any]]] = []
    for row in rows:
        for target in TARGETS:
            if getattr(row, f"{target}_breach"):
                breached.append((row.id, ticket_data(row, target)))
            elif getattr(row, f"{target}_warn"):
                warned.append((row.id, ticket_data(row, target)))
    await publish(session, DUE_SOON, warned)
    await publish(session, BREACHED, breached)
    rescored = [r for r in rows if r.first_response_breach or r.resolution_breach]
    if rescored:
        await events.emit(
            session,
            events.TICKETS_CHANGED,
            [r.id for r in rescored],
            [r.customer_id for r in rescored],
            action="sla_breached",
        )
    return Marked(warned=len(warned), breached=len(breached), tickets=len(rows))


async def check_sla(ctx: dict[str, Any], now: datetime | None = None) -> dict[str, int]:
    """Every minute: the SLA marks passed since the last run, as of `now` (default: now)."""
    async with session_scope(ctx["sessionmaker"]) as session:
        marked = await mark_due(session, now or datetime.now(UTC))
    return {"warned": marked.warned, "breached": marked.breached, "tickets": marked.tickets}

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api import references
from services.api.deps import check_if_match
from services.api.pagination import fetch_page
from services.api.tickets import clock
from services.api.tickets.schemas import TicketCreate, TicketRead, TicketUpdate
from services.core import audit, events
from services.core.db import load
from services.core.errors import FieldError, InvalidInput
from services.core.models import Ticket
from services.core.models.enums import TicketKind, TicketPriority, TicketStatus

SORTS = ("created_at", "updated_at")
RESOURCE = "ticket"
DONE = frozenset({TicketStatus.resolved, TicketStatus.closed})


@dataclass
class TicketFilters:
    status: TicketStatus | None = None
    priority: TicketPriority | None = None
    assignee: str | None = None
    customer_id: uuid.UUID | None = None
    channel_id: uuid.UUID | None = None
    kind: TicketKind | None = None


def snapshot(ticket: Ticket) -> dict[str, Any]:
    return TicketRead.model_validate(ticket).model_dump(mode="json")


async def get(session: AsyncSession, ticket_id: uuid.UUID, *, for_update: bool = False) -> Ticket:
    return await load(session, Ticket, ticket_id, for_update=for_update)


async def list_(
    session: AsyncSession, filters: TicketFilters, sort: str, cursor: str | None, limit: int
) -> tuple[list[Ticket], str | None]:
    columns = {name: getattr(Ticket, name) for name in (*SORTS, "id")}
    return await fetch_page(
        session, _filtered(select(Ticket), filters), sort, columns, cursor, limit
    )


def _filtered(query: Select[Any], f: TicketFilters) -> Select[Any]:
    for column, value in (
        (Ticket.status, f.status),
        (Ticket.priority, f.priority),
        (Ticket.assignee, f.assignee),
        (Ticket.customer_id, f.customer_id),
        (Ticket.channel_id, f.channel_id),
        (Ticket.kind, f.kind),
    ):
        if value is not None:
            query = query.where(column == value)
    return query


def _not_found(field: str, what: str) -> InvalidInput:
    return InvalidInput(
        f"The {what} does not exist.",
        [FieldError(f"body.{field}", f"no {what} has this id", "not_found")],
    )


async def _check_channel(session: AsyncSession, channel_id: uuid.UUID | None) -> None:
    if channel_id is not None and not await references.existing_channels(session, [channel_id]):
        raise _not_found("channel_id", "channel")


def _stamp_status(ticket: Ticket, status: TicketStatus, now: datetime) -> None:
    """Resolving stamps resolved_at, closing also closed_at (first time only); reopening
    clears both."""
    if status in DONE:
        ticket.resolved_at = ticket.resolved_at or now
    else:
        ticket.resolved_at = None
    if status == TicketStatus.closed:
        ticket.closed_at = ticket.closed_at or now
    else:
        ticket.closed_at = None


async def _emitted(session: AsyncSession, ticket: Ticket, event: str, action: str) -> None:
    await events.emit(session, event, [ticket.id], [ticket.customer_id], action=action)


async def create(session: AsyncSession, actor: audit.Actor, data: TicketCreate) -> Ticket:
    channels, _ = await references.customers(session, [data.customer_id], [])
    if data.customer_id not in channels:
        raise _not_found("customer_id", "customer")
    await _check_channel(session, data.channel_id)
    now = await clock.now(session)
    ticket = Ticket(**data.model_dump(), created_at=now)
    ticket.channel_id = data.channel_id or channels[data.customer_id]
    ticket.first_response_warned = ticket.resolution_warned = False
    _stamp_status(ticket, data.status, now)
    change = clock.Change(
        reassign=True,
        status_changed=True,
        responded=data.first_responded_at is not None,
        resolved=ticket.resolved_at is not None,
    )
    await clock.track(session, ticket, change, now)
    session.add(ticket)
    await session.flush()
    await session.refresh(ticket)
    await _emitted(session, ticket, events.TICKETS_CHANGED, "created")
    await audit.record(session, actor, "create", RESOURCE, ticket.id, None, snapshot(ticket))
    return ticket


async def update(
    session: AsyncSession,
    actor: audit.Actor,
    ticket_id: uuid.UUID,
    data: TicketUpdate,
    if_match: str | None,
) -> Ticket:
    ticket = await get(session, ticket_id, for_update=True)
    check_if_match(if_match, ticket.version)
    before = snapshot(ticket)
    changes = data.model_dump(exclude_unset=True)
    await _check_channel(session, changes.get("channel_id"))
    now = await clock.now(session)
    was_resolved = ticket.resolved_at is not None
    status = changes.get("status")
    if status is not None and status != ticket.status:
        _stamp_status(ticket, status, now)
    change = clock.Change(
        reassign=_changes(ticket, changes, "priority") or _changes(ticket, changes, "channel_id"),
        status_changed=_changes(ticket, changes, "status"),
        responded=changes.get("first_responded_at") is not None,
        resolved=ticket.resolved_at is not None and not was_resolved,
    )
    for name, value in changes.items():
        setattr(ticket, name, value)
    await clock.track(session, ticket, change, now)
    ticket.version += 1
    ticket.updated_at = func.now()
    await session.flush()
    await session.refresh(ticket)
    await _emitted(session, ticket, events.TICKETS_CHANGED, "updated")
    await audit.record(session, actor, "update", RESOURCE, ticket.id, before, snapshot(ticket))
    return ticket


def _changes(ticket: Ticket, changes: dict[str, Any], name: str) -> bool:
    return name in changes and changes[name] != getattr(ticket, name)


async def delete_(session: AsyncSession, actor: audit.Actor, ticket_id: uuid.UUID) -> None:
    ticket = await get(session, ticket_id, for_update=True)
    before = snapshot(ticket)
    await session.execute(delete(Ticket).where(Ticket.id == ticket_id))
    await _emitted(session, ticket, events.TICKETS_DELETED, "deleted")
    await audit.record(session, actor, "delete", RESOURCE, ticket_id, before, None)

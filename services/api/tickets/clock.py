"""A ticket's SLA state kept current in the write that changes it: its policy, due times,
pauses and the breach flags that answers given late set."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.models import SlaPolicy, Ticket
from services.core.sla.tickets import (
    Clock,
    SlaTerms,
    due_times,
    late,
    move_clock,
    pause_ended,
    pauses_from_json,
    pauses_to_json,
    still_warned,
)


@dataclass(frozen=True)
class Change:
    """What a write did to the ticket, as far as its SLA cares."""

    reassign: bool = False
    """Created, or its priority or channel changed: the policy is chosen again."""
    status_changed: bool = False
    responded: bool = False
    """`first_responded_at` was set."""
    resolved: bool = False
    """`resolved_at` was stamped by this write."""


async def now(session: AsyncSession) -> datetime:
    """The transaction's time: what `now()` gives every row the write stamps."""
    moment: datetime = (await session.execute(select(func.now()))).scalar_one()
    return moment


async def policy_for(session: AsyncSession, channel_id: uuid.UUID | None) -> SlaPolicy | None:
    """The channel's active policy, else the active default one, else None."""
    matches: ColumnElement[bool] = SlaPolicy.is_default.is_(True)
    if channel_id is not None:
        matches = or_(matches, SlaPolicy.channel_id == channel_id)
    query = (
        select(SlaPolicy)
        .where(SlaPolicy.archived_at.is_(None), matches)
        .order_by(SlaPolicy.is_default)  # the channel's own policy first
        .limit(1)
    )
    return await session.scalar(query)


def terms_of(policy: SlaPolicy) -> SlaTerms:
    return SlaTerms.from_stored(
        policy.targets, policy.business_hours, policy.pause_statuses, policy.due_soon_ratio
    )


async def track(session: AsyncSession, ticket: Ticket, change: Change, at: datetime) -> None:
    """Bring the ticket's SLA fields up to date after `change`, at transaction time `at`.

    A reassigned ticket takes the policy that applies now (its channel's, else the default)
    and due times from it; otherwise it keeps the policy it has, even once archived, and its
    due times move only when a pause ends. Breach flags are only ever set: a breach stays on
    record whatever happens to the ticket later.
    """
    if change.reassign or change.status_changed:
        with session.no_autoflush:  # the ticket is written once, when it is complete
            if change.reassign:
                policy = await policy_for(session, ticket.channel_id)
            elif ticket.sla_policy_id is not None:
                policy = await session.get(SlaPolicy, ticket.sla_policy_id)
            else:
                policy = None
        _run_clock(ticket, policy, at, retime=change.reassign)
    if change.responded:
        ticket.first_response_breached = ticket.first_response_breached or late(
            ticket.first_responded_at, ticket.first_response_due_at
        )
    if change.resolved:
        ticket.resolution_breached = ticket.resolution_breached or late(
            at, ticket.resolution_due_at
        )
        if ticket.first_responded_at is None:  # the resolution is the first answer
            ticket.first_response_breached = ticket.first_response_breached or late(
                at, ticket.first_response_due_at
            )


def _run_clock(ticket: Ticket, policy: SlaPolicy | None, at: datetime, *, retime: bool) -> None:
    terms = None if policy is None else terms_of(policy)
    before = Clock(ticket.paused_since, pauses_from_json(ticket.sla_pauses or []))
    after = move_clock(before, ticket.status, terms, at)
    ticket.sla_policy_id = None if policy is None else policy.id
    ticket.paused_since = after.paused_since
    if after != before:
        ticket.sla_pauses = pauses_to_json(after.pauses)
    if not (retime or pause_ended(before, after)):
        return
    if terms is None:
        ticket.first_response_due_at = ticket.resolution_due_at = None
        ticket.first_response_due_soon_at = ticket.resolution_due_soon_at = None
        ticket.first_response_warned = ticket.resolution_warned = False
        return
    due = due_times(ticket.created_at or at, ticket.priority, terms, after.pauses)
    ticket.first_response_due_at = due.first_response_due_at
    ticket.resolution_due_at = due.resolution_due_at
    ticket.first_response_due_soon_at = due.first_response_due_soon_at
    ticket.resolution_due_soon_at = due.resolution_due_soon_at
    ticket.first_response_warned = still_warned(
        ticket.first_response_warned, due.first_response_due_soon_at, at
    )
    ticket.resolution_warned = still_warned(
        ticket.resolution_warned, due.resolution_due_soon_at, at
    )

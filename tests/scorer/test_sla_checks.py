"""The scheduled SLA check with a controlled clock: it warns, breaches, announces each once,
queues rescoring for breaches, and leaves paused and finished tickets alone."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq import ArqRedis
from fastapi import FastAPI
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import Settings
from services.core.models import SlaPolicy, Ticket
from services.core.models.base import new_id
from services.core.models.enums import TicketPriority
from services.core.sla.tickets import SlaTerms, due_times
from services.scorer.jobs.events import process_events
from services.scorer.jobs.sla import check_sla

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
"""When the tickets are opened; the checks run at chosen times after it."""
SLA_BREACH_RULE = uuid.UUID("019ab000-0000-7000-8000-000000000004")
TARGETS = {
    "urgent": {"first_response_minutes": 60, "resolution_minutes": 240},
    "high": {"first_response_minutes": 240, "resolution_minutes": 1440},
    "normal": {"first_response_minutes": 480, "resolution_minutes": 2880},
    "low": {"first_response_minutes": 1440, "resolution_minutes": 5760},
}
TERMS = SlaTerms.from_stored(TARGETS, None, ["pending"], 0.8)
Customer = tuple[uuid.UUID, uuid.UUID]


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.fixture
async def policy(engine: AsyncEngine) -> uuid.UUID:
    policy_id = new_id()
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM sla_policies"))
        await conn.execute(
            insert(SlaPolicy),
            [{"id": policy_id, "name": "Default", "is_default": True, "targets": TARGETS}],
        )
    return policy_id


@pytest.fixture
async def customer(engine: AsyncEngine) -> Customer:
    channel_id = new_id()
    customer_id = new_id()
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO channels (id, name, type) VALUES (:id, 'East', 'agent')"),
            {"id": channel_id},
        )
        await conn.execute(
            text("INSERT INTO customers (id, name, channel_id) VALUES (:id, '张伟', :channel)"),
            {"id": customer_id, "channel": channel_id},
        )
    return customer_id, channel_id


@pytest.fixture
def ctx(app: FastAPI) -> dict[str, Any]:
    return {"sessionmaker": app.state.sessionmaker}


async def subscribe(engine: AsyncEngine, *types: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, url, event_types, secret) "
                "VALUES (gen_random_uuid(), 'https://example.com/hook', :types, 'whsec_AAAA')"
            ),
            {"types": list(types)},
        )


async def open_ticket(
    engine: AsyncEngine,
    customer: Customer,
    policy: uuid.UUID,
    priority: TicketPriority = TicketPriority.urgent,
    **fields: Any,
) -> uuid.UUID:
    """A ticket opened at T0 with the due times the API gives it; urgent: first response
    due at +60 min (due soon at +48), resolution at +240 (due soon at +192)."""
    due = due_times(T0, priority, TERMS)
    row = {
        "id": new_id(),
        "customer_id": customer[0],
        "channel_id": customer[1],
        "subject": "配送延迟",
        "kind": "complaint",
        "priority": priority,
        "assignee": "wang.fang@example.com",
        "created_at": T0,
        "sla_policy_id": policy,
        "first_response_due_at": due.first_response_due_at,
        "resolution_due_at": due.resolution_due_at,
        "first_response_due_soon_at": due.first_response_due_soon_at,
        "resolution_due_soon_at": due.resolution_due_soon_at,
        **fields,
    }
    async with engine.begin() as conn:
        await conn.execute(insert(Ticket), [row])
    ticket_id: uuid.UUID = row["id"]
    return ticket_id


async def flags(engine: AsyncEngine, ticket_id: uuid.UUID) -> tuple[bool, bool, bool, bool, int]:
    """first response warned, breached; resolution warned, breached; version."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT first_response_warned, first_response_breached, resolution_warned, "
                    "resolution_breached, version FROM tickets WHERE id = :id"
                ),
                {"id": ticket_id},
            )
        ).one()
    return (
        row.first_response_warned,
        row.first_response_breached,
        row.resolution_warned,
        row.resolution_breached,
        row.version,
    )


async def messages(engine: AsyncEngine) -> list[tuple[str, str, int]]:
    """(type, target, sequence) of every webhook message, oldest first."""
    async with engine.connect() as conn:
        query = text("SELECT type, body FROM webhook_messages ORDER BY created_at, sequence")
        rows = (await conn.execute(query)).all()
    return [(r.type, r.body["data"]["target"], r.body["data"]["sequence"]) for r in rows]


async def outbox(engine: AsyncEngine) -> list[tuple[int, str, dict[str, Any]]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, type, payload FROM outbox_events ORDER BY id"))
        return [(r.id, r.type, r.payload) for r in rows]


async def test_a_ticket_is_warned_then_breached_each_announced_once(
    ctx: dict[str, Any], engine: AsyncEngine, customer: Customer, policy: uuid.UUID
) -> None:
    await subscribe(engine, "ticket.sla_due_soon", "ticket.sla_breached")
    ticket = await open_ticket(engine, customer, policy)
    nothing = {"warned": 0, "breached": 0, "tickets": 0}

    assert await check_sla(ctx, minutes(47)) == nothing
    assert await flags(engine, ticket) == (False, False, False, False, 1)

    assert await check_sla(ctx, minutes(48)) == {"warned": 1, "breached": 0, "tickets": 1}
    assert await flags(engine, ticket) == (True, False, False, False, 2)
    assert await check_sla(ctx, minutes(48)) == nothing  # a rerun
    assert await check_sla(ctx, minutes(59)) == nothing
    assert await outbox(engine) == []  # a warning changes no score

    assert await check_sla(ctx, minutes(60)) == {"warned": 0, "breached": 1, "tickets": 1}
    assert await flags(engine, ticket) == (True, True, False, False, 3)
    assert await check_sla(ctx, minutes(61)) == nothing
    ((_, kind, payload),) = await outbox(engine)
    assert (kind, payload) == (
        "tickets.changed",
        {"ids": [str(ticket)], "customer_ids": [str(customer[0])], "action": "sla_breached"},
    )

    assert await check_sla(ctx, minutes(192)) == {"warned": 1, "breached": 0, "tickets": 1}
    assert await check_sla(ctx, minutes(240)) == {"warned": 0, "breached": 1, "tickets": 1}
    assert await flags(engine, ticket) == (True, True, True, True, 5)
    assert await check_sla(ctx, minutes(10_000)) == nothing
    assert len(await outbox(engine)) == 2

    assert await messages(engine) == [
        ("ticket.sla_due_soon", "first_response", 1),
        ("ticket.sla_breached", "first_response", 2),
        ("ticket.sla_due_soon", "resolution", 3),
        ("ticket.sla_breached", "resolution", 4),
    ]
    async with engine.connect() as conn:
        body = (
            await conn.execute(
                text("SELECT body FROM webhook_messages WHERE sequence = 2 AND subject_id = :id"),
                {"id": ticket},
            )
        ).scalar_one()
    assert body["type"] == "ticket.sla_breached"
    assert body["data"] == {
        "ticket_id": str(ticket),
        "customer_id": str(customer[0]),
        "channel_id": str(customer[1]),
        "target": "first_response",
        "due_at": minutes(60).isoformat(),
        "priority": "urgent",
        "assignee": "wang.fang@example.com",
        "link": f"/v1/tickets/{ticket}",
        "sequence": 2,
    }


async def test_a_late_check_announces_the_breach_not_the_warning(
    ctx: dict[str, Any], engine: AsyncEngine, customer: Customer, policy: uuid.UUID
) -> None:
    """The worker was down past both marks: the ticket is breached, and said so once."""
    await subscribe(engine, "*")
    ticket = await open_ticket(engine, customer, policy)
    assert await check_sla(ctx, minutes(300)) == {"warned": 0, "breached": 2, "tickets": 1}
    assert await flags(engine, ticket) == (True, True, True, True, 2)
    assert await messages(engine) == [
        ("ticket.sla_breached", "first_response", 1),
        ("ticket.sla_breached", "resolution", 2),
    ]
    assert len(await outbox(engine)) == 1


async def test_paused_answered_and_finished_tickets_are_left_alone(
    ctx: dict[str, Any], engine: AsyncEngine, customer: Customer, policy: uuid.UUID
) -> None:
    await subscribe(engine, "*")
    paused = await open_ticket(engine, customer, policy, status="pending", paused_since=minutes(10))
    answered = await open_ticket(engine, customer, policy, first_responded_at=minutes(5))
    resolved = await open_ticket(
        engine, customer, policy, status="resolved", resolved_at=minutes(30)
    )
    untimed = await open_ticket(
        engine,
        customer,
        policy,
        sla_policy_id=None,
        first_response_due_at=None,
        resolution_due_at=None,
        first_response_due_soon_at=None,
        resolution_due_soon_at=None,
    )
    normal = await open_ticket(engine, customer, policy, TicketPriority.normal)

    # At +100 min: the urgent first response would be breached, the normal one not yet warned.
    assert await check_sla(ctx, minutes(100)) == {"warned": 0, "breached": 0, "tickets": 0}
    # At +200: the answered ticket's resolution is due soon; its first response is not checked.
    assert await check_sla(ctx, minutes(200)) == {"warned": 1, "breached": 0, "tickets": 1}
    assert await flags(engine, answered) == (False, False, True, False, 2)
    for ticket in (paused, resolved, untimed, normal):
        assert await flags(engine, ticket) == (False, False, False, False, 1)
    assert await messages(engine) == [("ticket.sla_due_soon", "resolution", 1)]

    # Resumed, the paused ticket is checked again (its due times moved when the pause ended).
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE tickets SET paused_since = NULL, status = 'open' WHERE id = :id"),
            {"id": paused},
        )
    result = await check_sla(ctx, minutes(200))
    assert result == {"warned": 1, "breached": 1, "tickets": 1}
    assert await flags(engine, paused) == (True, True, True, False, 2)


async def test_without_subscribers_tickets_are_still_marked(
    ctx: dict[str, Any], engine: AsyncEngine, customer: Customer, policy: uuid.UUID
) -> None:
    ticket = await open_ticket(engine, customer, policy)
    assert await check_sla(ctx, minutes(60)) == {"warned": 0, "breached": 1, "tickets": 1}
    assert await flags(engine, ticket) == (True, True, False, False, 2)
    assert await messages(engine) == []
    assert len(await outbox(engine)) == 1


async def test_a_breach_rescores_the_customer_and_raises_the_sla_alert(
    app: FastAPI,
    ctx: dict[str, Any],
    engine: AsyncEngine,
    customer: Customer,
    policy: uuid.UUID,
    arq_redis: ArqRedis,
    settings: Settings,
) -> None:
    await open_ticket(engine, customer, policy)
    await check_sla(ctx, minutes(61))
    ((event_id, _, _),) = await outbox(engine)
    worker_ctx = {"sessionmaker": app.state.sessionmaker, "redis": arq_redis, "settings": settings}
    assert (await process_events(worker_ctx, [event_id]))["rescored"] == 1
    async with engine.connect() as conn:
        features = (
            await conn.execute(
                text("SELECT features FROM customer_health WHERE customer_id = :id"),
                {"id": customer[0]},
            )
        ).scalar_one()
        alert = (
            await conn.execute(
                text(
                    "SELECT status, reason FROM alerts WHERE rule_id = :rule AND subject_id = :id"
                ),
                {"rule": SLA_BREACH_RULE, "id": customer[0]},
            )
        ).one()
    assert features["sla_breaches_90d"] == 1
    assert alert.status == "open"
    assert (alert.reason["kind"], alert.reason["sla_breaches_90d"]) == ("sla_breach", 1)

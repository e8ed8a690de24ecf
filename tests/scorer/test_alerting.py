"""Alert rules applied by the scoring path: open once, refresh, auto-resolve, announce."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.db import session_scope
from services.core.models import Interaction
from services.core.models.base import new_id
from services.core.scoring.profile import DEFAULT_PROFILE
from services.scorer.scoring import rescore, rescore_channels
from tests.api.customer_rows import insert_channel, insert_customer

NOW = datetime.now(UTC)
RED = uuid.UUID("019ab000-0000-7000-8000-000000000001")  # default rule "Customer turned red"
SILENT_A = uuid.UUID("019ab000-0000-7000-8000-000000000002")  # A-tier, no order for 60 days
CHANNEL_RED = uuid.UUID("019ab000-0000-7000-8000-000000000005")


async def _orders(engine: AsyncEngine, customer_id: uuid.UUID, *days_ago: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Interaction),
            [
                {
                    "id": new_id(),
                    "customer_id": customer_id,
                    "kind": "order",
                    "occurred_at": NOW - timedelta(days=d),
                    "amount": Decimal("100"),
                }
                for d in days_ago
            ],
        )


async def _score(app: FastAPI, ids: list[uuid.UUID], as_of: datetime = NOW) -> None:
    async with session_scope(app.state.sessionmaker) as session:
        await rescore(session, ids, as_of, DEFAULT_PROFILE)


async def _alerts(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        query = text("SELECT * FROM alerts ORDER BY opened_at, rule_id")
        return list((await conn.execute(query)).all())


async def _lapsed(engine: AsyncEngine, **fields: Any) -> uuid.UUID:
    customer = await insert_customer(engine, created_at=NOW - timedelta(days=900), **fields)
    await _orders(engine, customer, 400, 450, 500)
    return customer


async def test_a_red_customer_gets_one_alert_owned_by_its_owner(
    app: FastAPI, engine: AsyncEngine
) -> None:
    channel = await insert_channel(engine)
    customer = await _lapsed(engine, owner="li.na", channel_id=channel)
    await _score(app, [customer])
    await _score(app, [customer])  # evaluated again: still one alert
    (alert,) = await _alerts(engine)
    assert (alert.rule_id, alert.subject, alert.subject_id) == (RED, "customer", customer)
    assert (alert.status, alert.severity, alert.owner) == ("open", "high", "li.na")
    assert alert.channel_id == channel
    assert alert.fire_count == 1
    assert alert.reason["band"] == "red"
    assert abs(alert.due_at - (alert.opened_at + timedelta(hours=72))) < timedelta(seconds=1)


async def test_the_alert_resolves_itself_when_the_customer_recovers(
    app: FastAPI, engine: AsyncEngine
) -> None:
    customer = await _lapsed(engine)
    await _score(app, [customer])
    await _orders(engine, customer, *range(1, 60, 4))
    await _score(app, [customer])
    (alert,) = await _alerts(engine)
    assert (alert.status, alert.closed_by) == ("resolved", "auto")
    await _orders(engine, customer, 0.5)
    await _score(app, [customer])
    assert len(await _alerts(engine)) == 1  # nothing new while healthy


async def test_time_passing_alone_raises_inactivity(app: FastAPI, engine: AsyncEngine) -> None:
    customer = await insert_customer(engine, created_at=NOW - timedelta(days=900), value_tier="A")
    other = await insert_customer(engine, created_at=NOW - timedelta(days=900), value_tier="B")
    for who in (customer, other):
        await _orders(engine, who, *range(50, 400, 7))
    await _score(app, [customer, other])
    assert [a.rule_id for a in await _alerts(engine)] == []
    await _score(app, [customer, other], NOW + timedelta(days=15))  # the clock moves on
    silent = [a for a in await _alerts(engine) if a.rule_id == SILENT_A]
    assert [a.subject_id for a in silent] == [customer]  # tier B is not watched by the rule
    assert silent[0].reason["days_since_order"] >= 60


async def test_a_past_recompute_raises_nothing(app: FastAPI, engine: AsyncEngine) -> None:
    customer = await _lapsed(engine)
    await _score(app, [customer], NOW - timedelta(days=30))
    assert await _alerts(engine) == []


async def test_opened_and_resolved_alerts_are_announced(app: FastAPI, engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, url, event_types, secret) VALUES "
                "(gen_random_uuid(), 'https://example.com/a', '{alert.opened,alert.resolved}', "
                "'whsec_AAAA')"
            )
        )
    customer = await _lapsed(engine, owner="li.na")
    await _score(app, [customer])
    await _orders(engine, customer, *range(1, 60, 4))
    await _score(app, [customer])
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT type, body FROM webhook_messages ORDER BY sequence"))
        ).all()
    assert [r.type for r in rows] == ["alert.opened", "alert.resolved"]
    opened = rows[0].body["data"]
    assert opened["subject_id"] == str(customer)
    assert opened["owner"] == "li.na"
    assert opened["link"] == f"/v1/alerts/{opened['alert_id']}"


async def test_an_inactive_rule_raises_nothing(app: FastAPI, engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alert_rules SET active = false"))
    customer = await _lapsed(engine)
    await _score(app, [customer])
    assert await _alerts(engine) == []


async def test_a_red_channel_is_alerted(app: FastAPI, engine: AsyncEngine) -> None:
    channel = await insert_channel(engine, owner="wang.fang")
    customer = await _lapsed(engine, channel_id=channel)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO customer_channel_memberships (customer_id, channel_id, started_at) "
                "VALUES (:c, :ch, :t)"
            ),
            {"c": customer, "ch": channel, "t": NOW - timedelta(days=900)},
        )
    await _score(app, [customer])
    async with session_scope(app.state.sessionmaker) as session:
        await rescore_channels(session, [channel], NOW, DEFAULT_PROFILE)
    channel_alerts = [a for a in await _alerts(engine) if a.rule_id == CHANNEL_RED]
    assert [(a.subject, a.subject_id, a.owner) for a in channel_alerts] == [
        ("channel", channel, "wang.fang")
    ]

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from arq import ArqRedis
from fastapi import FastAPI
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import Settings
from services.core.db import session_scope
from services.core.models import (
    ChannelHealth,
    ChannelHealthHistory,
    CustomerChannelMembership,
    CustomerHealth,
    Interaction,
    Job,
)
from services.core.models.base import new_id
from services.core.scoring import tiers
from services.core.scoring.profile import DEFAULT_PROFILE
from services.scorer import value_tiers
from services.scorer.jobs.scoring import (
    rescore_customers,
    rescore_touched_channels,
    run_recompute,
)
from services.scorer.scoring import rescore
from tests.api.customer_rows import insert_channel, insert_customer
from tests.helpers import count_rows

T = datetime(2026, 6, 30, 12, tzinfo=UTC)


async def _orders(engine: AsyncEngine, customer_id: uuid.UUID, *days_ago: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Interaction),
            [
                {
                    "id": new_id(),
                    "customer_id": customer_id,
                    "kind": "order",
                    "occurred_at": T - timedelta(days=d),
                    "amount": Decimal("100"),
                }
                for d in days_ago
            ],
        )


async def _score(app: FastAPI, ids: list[uuid.UUID], as_of: datetime) -> int:
    async with session_scope(app.state.sessionmaker) as session:
        return await rescore(session, ids, as_of, DEFAULT_PROFILE)


async def _health(engine: AsyncEngine) -> dict[uuid.UUID, Any]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(CustomerHealth))
        return {r.customer_id: r for r in rows}


async def test_scores_are_stored_explained_and_idempotent(
    app: FastAPI, engine: AsyncEngine
) -> None:
    loyal = await insert_customer(engine, created_at=T - timedelta(days=500))
    lapsed = await insert_customer(engine, created_at=T - timedelta(days=500))
    await _orders(engine, loyal, 3, 20, 40, 70, 100, 150, 200)
    await _orders(engine, lapsed, 300, 330)

    assert await _score(app, [loyal, lapsed, new_id()], T) == 2
    health = await _health(engine)
    assert health[loyal].score > health[lapsed].score
    for row in health.values():
        assert 0 <= row.score <= 100
        assert abs(sum(row.contributions.values()) - row.score) < 0.1
        assert row.band in {"green", "yellow", "red"}
        assert row.as_of == T
        assert row.profile_version == DEFAULT_PROFILE.version
        assert row.features["orders_365d"] in (7, 2)
    assert await count_rows(engine, "customer_health_history") == 2

    assert await _score(app, [loyal, lapsed], T) == 2
    assert await count_rows(engine, "customer_health_history") == 2
    again = await _health(engine)
    assert {k: v.score for k, v in again.items()} == {k: v.score for k, v in health.items()}


async def test_time_passing_lowers_the_score_without_events(
    app: FastAPI, engine: AsyncEngine
) -> None:
    customer = await insert_customer(engine, created_at=T - timedelta(days=400))
    await _orders(engine, customer, 1, 10, 30, 60, 90)
    await _score(app, [customer], T)
    fresh = (await _health(engine))[customer]
    later = T + timedelta(days=150)
    await _score(app, [customer], later)
    decayed = (await _health(engine))[customer]
    assert decayed.score < fresh.score
    assert decayed.as_of == later
    assert decayed.trend is not None
    assert abs(decayed.trend - (decayed.score - fresh.score)) < 0.01
    assert await count_rows(engine, "customer_health_history") == 2


async def test_an_older_as_of_fills_history_but_keeps_the_current_score(
    app: FastAPI, engine: AsyncEngine
) -> None:
    customer = await insert_customer(engine, created_at=T - timedelta(days=400))
    await _orders(engine, customer, 1, 100)
    await _score(app, [customer], T)
    await _score(app, [customer], T - timedelta(days=60))
    current = (await _health(engine))[customer]
    assert current.as_of == T
    assert await count_rows(engine, "customer_health_history") == 2


async def test_lifecycle_moves_are_recorded(app: FastAPI, engine: AsyncEngine) -> None:
    gone = await insert_customer(
        engine, created_at=T - timedelta(days=700), lifecycle_stage="active"
    )
    await _orders(engine, gone, 400)
    await _score(app, [gone], T)
    async with engine.connect() as conn:
        stage = await conn.scalar(
            text("SELECT lifecycle_stage FROM customers WHERE id = :i"), {"i": gone}
        )
        move = (await conn.execute(text("SELECT * FROM lifecycle_moves"))).one()
    assert stage == "churned"
    assert (move.from_stage, move.to_stage) == ("active", "churned")
    assert move.reason["days_since_interaction"] == 400
    scored = (await _health(engine))[gone]
    assert (move.reason["score"], move.reason["band"]) == (scored.score, scored.band)

    await _score(app, [gone], T)
    assert await count_rows(engine, "lifecycle_moves") == 1


async def test_recompute_job_matches_the_live_path(app: FastAPI, engine: AsyncEngine) -> None:
    customers = [
        await insert_customer(engine, created_at=T - timedelta(days=500)) for _ in range(6)
    ]
    for n, customer in enumerate(customers):
        await _orders(engine, customer, *[5 + 40 * k + n * 7 for k in range(n + 1)])
    await _score(app, customers, T)
    live = {k: (v.score, v.band) for k, v in (await _health(engine)).items()}

    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM customer_health"))
        job_id = new_id()
        await conn.execute(
            insert(Job).values(
                id=job_id,
                kind="recompute",
                params={"as_of": T.isoformat(), "customer_ids": None},
                created_by="test",
            )
        )
    ctx = {"sessionmaker": app.state.sessionmaker}
    assert await run_recompute(ctx, str(job_id)) == "succeeded"
    assert await run_recompute(ctx, str(job_id)) == "skipped"

    recomputed = {k: (v.score, v.band) for k, v in (await _health(engine)).items()}
    assert recomputed == live
    async with engine.connect() as conn:
        job = (await conn.execute(select(Job).where(Job.id == job_id))).one()
        tiered = (
            await conn.execute(
                select(func.count())
                .select_from(text("customers"))
                .where(text("value_tier IS NOT NULL"))
            )
        ).scalar_one()
    assert (job.status, job.progress, job.done, job.total) == ("succeeded", 1.0, 6, 6)
    assert job.result["scored"] == 6
    assert tiered == 6


async def test_value_tiers_written_in_slices_match_one_ranking_of_everyone(
    app: FastAPI, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    customers = [
        await insert_customer(engine, created_at=T - timedelta(days=500)) for _ in range(9)
    ]
    for n, customer in enumerate(customers[:7]):
        await _orders(engine, customer, *[3 + 30 * k + n * 11 for k in range(n + 1)])
    gathered = value_tiers.TierInputs()
    async with session_scope(app.state.sessionmaker) as session:
        await rescore(session, customers[:4], T, DEFAULT_PROFILE, gathered)
        await rescore(session, customers[4:], T, DEFAULT_PROFILE, gathered)
    monkeypatch.setattr(value_tiers, "WRITE_ROWS", 2)

    changed = await value_tiers.assign_value_tiers(app.state.sessionmaker, 2, gathered)

    health = await _health(engine)
    ordered = sorted(health)
    expected = tiers.value_tiers(
        *(
            np.array([health[i].features[name] for i in ordered], dtype=np.float64)
            for name in ("days_since_order", "orders_365d", "revenue_365d")
        )
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, value_tier FROM customers"))).all()
    stored: dict[uuid.UUID, str] = {r.id: r.value_tier for r in rows}
    assert [stored[i] for i in ordered] == expected.tolist()
    assert {"A", "B", "C"} <= set(stored.values())
    assert changed == 9
    # Ranked again from the stored scores, nobody changes tier.
    async with app.state.sessionmaker() as session:
        stored_inputs = await value_tiers.TierInputs.stored(session)
    assert await value_tiers.assign_value_tiers(app.state.sessionmaker, 2, stored_inputs) == 0


async def test_a_recompute_of_everyone_with_no_customers_succeeds(
    app: FastAPI, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        job_id = new_id()
        await conn.execute(
            insert(Job).values(
                id=job_id,
                kind="recompute",
                params={"as_of": T.isoformat(), "customer_ids": None},
                created_by="test",
            )
        )
    assert await run_recompute({"sessionmaker": app.state.sessionmaker}, str(job_id)) == "succeeded"
    async with engine.connect() as conn:
        job = (await conn.execute(select(Job).where(Job.id == job_id))).one()
    assert (job.status, job.done, job.total) == ("succeeded", 0, 0)


async def test_channel_health_follows_its_customers(
    app: FastAPI, engine: AsyncEngine, settings: Settings, arq_redis: ArqRedis
) -> None:
    channel = await insert_channel(engine)
    now = datetime.now(UTC)
    big = await insert_customer(engine, channel_id=channel, created_at=now - timedelta(days=400))
    small = await insert_customer(engine, channel_id=channel, created_at=now - timedelta(days=400))
    async with engine.begin() as conn:
        await conn.execute(
            insert(CustomerChannelMembership),
            [
                {"customer_id": c, "channel_id": channel, "started_at": now - timedelta(days=400)}
                for c in (big, small)
            ],
        )
        await conn.execute(
            insert(Interaction),
            [
                {
                    "id": new_id(),
                    "customer_id": big,
                    "channel_id": channel,
                    "kind": "order",
                    "occurred_at": now - timedelta(days=d),
                    "amount": Decimal("900"),
                }
                for d in (2, 30, 60, 89)
            ]
            + [
                {
                    "id": new_id(),
                    "customer_id": small,
                    "channel_id": channel,
                    "kind": "order",
                    "occurred_at": now - timedelta(days=300),
                    "amount": Decimal("100"),
                }
            ],
        )

    ctx = {"sessionmaker": app.state.sessionmaker, "redis": arq_redis, "settings": settings}
    assert await rescore_customers(ctx, [big, small]) == 2
    assert await count_rows(engine, "channel_health") == 0  # left for the next channel pass
    queued = await arq_redis.queued_jobs(queue_name=settings.queue_name)
    assert [job.function for job in queued] == ["rescore_touched_channels"]
    assert await rescore_customers(ctx, [big]) == 1
    assert len(await arq_redis.queued_jobs(queue_name=settings.queue_name)) <= 2
    assert await rescore_touched_channels({**ctx, "job_id": "pass-1"}) == 1
    assert await rescore_touched_channels({**ctx, "job_id": "pass-2"}) == 0
    customers = await _health(engine)
    async with engine.connect() as conn:
        row = (await conn.execute(select(ChannelHealth))).one()
        history = await conn.scalar(select(func.count()).select_from(ChannelHealthHistory))
    revenue = {big: 3600.0, small: 100.0}
    expected = sum(customers[c].score * revenue[c] for c in revenue) / sum(revenue.values())
    assert row.channel_id == channel
    assert abs(row.features["customer_score"] - expected) < 0.01
    assert row.features["customers"] == 2
    assert row.features["activity_90d"] == 4
    assert set(row.contributions) == {"customers", "activity", "tickets"}
    assert abs(sum(row.contributions.values()) - row.score) < 0.1
    assert history == 1


async def _subscribe(engine: AsyncEngine, *types: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, url, event_types, secret) "
                "VALUES (gen_random_uuid(), 'https://example.com/hook', :types, 'whsec_AAAA')"
            ),
            {"types": list(types)},
        )


async def _messages(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        query = text("SELECT type, subject_id, body FROM webhook_messages ORDER BY type")
        return list((await conn.execute(query)).all())


async def test_a_customer_turning_red_is_announced(app: FastAPI, engine: AsyncEngine) -> None:
    await _subscribe(engine, "customer.health.changed", "customer.band.changed")
    customer = await insert_customer(engine, created_at=T - timedelta(days=500))
    await _orders(engine, customer, 3, 20, 40, 70, 100, 150, 200)
    await _score(app, [customer], T)
    assert await _messages(engine) == []  # a first score is not a change

    later = T + timedelta(days=400)  # no order since: recency decays
    await _score(app, [customer], later)
    await _score(app, [customer], later)  # a rerun announces nothing twice
    band, health = await _messages(engine)
    assert (band.type, health.type) == ("customer.band.changed", "customer.health.changed")
    data = health.body["data"]
    assert data["customer_id"] == str(customer)
    assert data["previous_band"] == "green"
    assert data["band"] != "green"
    assert data["previous_score"] - data["score"] >= 5
    assert data["as_of"] == later.isoformat()
    assert "recency" in data["reason"]["factors"]
    assert data["reason"]["factors"]["recency"] < 0


async def test_small_moves_and_past_recomputes_stay_quiet(
    app: FastAPI, engine: AsyncEngine
) -> None:
    await _subscribe(engine, "*")
    customer = await insert_customer(engine, created_at=T - timedelta(days=500))
    await _orders(engine, customer, 3, 20, 40, 70, 100, 150, 200)
    await _score(app, [customer], T)
    await _score(app, [customer], T + timedelta(days=1))
    await _score(app, [customer], T - timedelta(days=400))  # older than the current score
    assert await _messages(engine) == []


async def test_nobody_subscribed_means_no_messages(app: FastAPI, engine: AsyncEngine) -> None:
    await _subscribe(engine, "webhook.test")
    customer = await insert_customer(engine, created_at=T - timedelta(days=500))
    await _orders(engine, customer, 3, 20, 40)
    await _score(app, [customer], T)
    await _score(app, [customer], T + timedelta(days=400))
    assert await _messages(engine) == []

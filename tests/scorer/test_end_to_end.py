"""API write -> outbox -> relay -> worker -> score visible through the API."""

import asyncio
import warnings
from collections.abc import Awaitable, Callable

import httpx
from arq import ArqRedis
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import Settings
from services.scorer.jobs.events import process_events
from tests.helpers import count_rows
from tests.scorer.workers import burst_worker, run_burst


async def _customer(client: httpx.AsyncClient, channel_id: str) -> str:
    response = await client.post(
        "/v1/customers", json={"name": "李娜 Li Na", "channel_id": channel_id}
    )
    assert response.status_code == 201, response.text
    customer_id: str = response.json()["id"]
    return customer_id


async def test_a_write_is_scored_and_explained(
    client: httpx.AsyncClient,
    settings: Settings,
    engine: AsyncEngine,
    relay: Callable[..., Awaitable[int]],
) -> None:
    channel = (await client.post("/v1/channels", json={"name": "East", "type": "agent"})).json()
    customer = await _customer(client, channel["id"])
    assert (await client.get(f"/v1/customers/{customer}/health")).status_code == 404

    items = [
        {
            "customer_id": customer,
            "kind": "order",
            "amount": "320.00",
            "occurred_at": when,
            "external_id": f"erp-{when}",
        }
        for when in ("2026-11-01T09:00:00+08:00", "2026-10-02T09:00:00+08:00")
    ]
    assert (await client.post("/v1/interactions/batch", json={"items": items})).status_code == 200
    assert await relay() == 1
    worker = await run_burst(settings)
    # The event batch, then the deferred channel pass it scheduled.
    assert (worker.jobs_complete, worker.jobs_failed) == (2, 0)

    health = await client.get(f"/v1/customers/{customer}/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert 0 <= body["score"] <= 100
    assert abs(sum(body["contributions"].values()) - body["score"]) < 0.1
    assert body["features"]["orders_365d"] == 2
    listed = (await client.get("/v1/customers")).json()["items"][0]
    assert listed["health"]["score"] == body["score"]
    channel_health = await client.get(f"/v1/channels/{channel['id']}/health")
    assert channel_health.status_code == 200, channel_health.text

    # Re-sent events are no-ops: no new event, so no rescoring and no new history row.
    history = await count_rows(engine, "customer_health_history")
    again = await client.post("/v1/interactions/batch", json={"items": items})
    assert again.json()["duplicates"] == 2
    assert await relay() == 0
    assert await count_rows(engine, "customer_health_history") == history


async def test_a_profile_change_rescores_everyone(
    client: httpx.AsyncClient, settings: Settings, relay: Callable[..., Awaitable[int]]
) -> None:
    channel = (await client.post("/v1/channels", json={"name": "East", "type": "agent"})).json()
    customer = await _customer(client, channel["id"])
    profile = (await client.get("/v1/scoring/profile")).json()
    profile["weights"]["recency"] = profile["weights"]["recency"] + 0.1
    changed = await client.put("/v1/scoring/profile", json=profile)
    assert changed.status_code == 200, changed.text
    job_id = changed.json()["recompute_job_id"]

    assert await relay() == 1
    await run_burst(settings)

    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0
    health = (await client.get(f"/v1/customers/{customer}/health")).json()
    assert health["profile_version"] == 2


async def test_recompute_as_of_a_past_time(
    client: httpx.AsyncClient, settings: Settings, relay: Callable[..., Awaitable[int]]
) -> None:
    channel = (await client.post("/v1/channels", json={"name": "East", "type": "agent"})).json()
    customer = await _customer(client, channel["id"])
    order = {
        "customer_id": customer,
        "kind": "order",
        "amount": "10",
        "occurred_at": "2025-01-10T00:00:00Z",
    }
    await client.post("/v1/interactions", json=order)
    requested = await client.post(
        "/v1/scoring/recompute", json={"as_of": "2025-02-01T00:00:00Z", "customer_ids": [customer]}
    )
    assert requested.status_code == 202, requested.text
    await relay()
    await run_burst(settings)
    job = (await client.get(requested.headers["location"])).json()
    assert job["status"] == "succeeded", job
    history = (await client.get(f"/v1/customers/{customer}/health/history")).json()["items"]
    as_of = {h["as_of"][:10] for h in history}
    assert "2025-02-01" in as_of


async def test_a_rerun_batch_counts_nothing_twice(
    client: httpx.AsyncClient,
    settings: Settings,
    engine: AsyncEngine,
    app: FastAPI,
    relay: Callable[..., Awaitable[int]],
    arq_redis: ArqRedis,
) -> None:
    channel = (await client.post("/v1/channels", json={"name": "East", "type": "agent"})).json()
    customer = await _customer(client, channel["id"])
    order = {
        "customer_id": customer,
        "kind": "order",
        "amount": "10",
        "occurred_at": "2026-11-01T00:00:00Z",
    }
    await client.post("/v1/interactions", json=order)
    await relay()
    await run_burst(settings)
    first = (await client.get(f"/v1/customers/{customer}/health")).json()
    history = await count_rows(engine, "customer_health_history")

    # What arq does after a worker is killed mid-job: the same batch runs again.
    ctx = {"settings": settings, "sessionmaker": app.state.sessionmaker, "redis": arq_redis}
    assert (await process_events(ctx, [1]))["customers"] == 1
    again = (await client.get(f"/v1/customers/{customer}/health")).json()
    assert again["score"] == first["score"]
    assert again["features"]["orders_365d"] == first["features"]["orders_365d"] == 1
    assert await count_rows(engine, "customer_health_history") == history


async def test_readyz_reports_a_live_worker(
    anonymous: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await anonymous.get("/readyz")).json()["worker"] is None
    worker = burst_worker(settings)
    worker.burst = False
    running = asyncio.create_task(worker.async_run())
    try:
        for _ in range(100):
            report = (await anonymous.get("/readyz")).json()["worker"]
            if report:
                break
            await asyncio.sleep(0.05)
        assert report is not None
        assert "j_complete=" in report
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await worker.close()
        redis = Redis.from_url(settings.require_redis_url())
        await redis.delete(settings.worker_health_key)
        await redis.aclose()

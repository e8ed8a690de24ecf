"""GET /metrics: the request histogram by route template, and the gauges read at scrape time."""

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import Settings
from tests.helpers import assert_problem
from tests.metricsdata import has_sample, sample, scrape

REQUESTS = "retention_http_request_duration_seconds_count"
SECONDS = "retention_http_request_duration_seconds_sum"


async def test_a_request_is_counted_under_its_route_template(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    route = "/v1/customers/{customer_id}"
    before = await scrape(anonymous)
    missing = uuid.uuid4()
    assert (await client.get(f"/v1/customers/{missing}")).status_code == 404
    created = await client.post("/v1/customers", json={"name": "王芳 Wang Fang"})
    assert created.status_code == 201, created.text
    for _ in range(2):
        assert (await client.get(f"/v1/customers/{created.json()['id']}")).status_code == 200

    after = await scrape(anonymous)
    for status, count in (("404", 1), ("200", 2)):
        labels = {"method": "GET", "route": route, "status": status}
        assert sample(after, REQUESTS, **labels) == sample(before, REQUESTS, **labels) + count
        assert sample(after, SECONDS, **labels) > sample(before, SECONDS, **labels)
    posted = {"method": "POST", "route": "/v1/customers", "status": "201"}
    assert sample(after, REQUESTS, **posted) == sample(before, REQUESTS, **posted) + 1
    # The histogram has buckets, and no series names a raw path.
    assert has_sample(after, "retention_http_request_duration_seconds_bucket", route=route)
    assert str(missing) not in after
    assert created.json()["id"] not in after


async def test_unknown_paths_and_methods_get_bounded_labels(anonymous: httpx.AsyncClient) -> None:
    before = await scrape(anonymous)
    path = f"/nowhere/{uuid.uuid4()}"
    assert (await anonymous.get(path)).status_code == 404
    assert (await anonymous.request("PROPFIND", "/healthz")).status_code == 405

    after = await scrape(anonymous)
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert sample(after, REQUESTS, **unmatched) == sample(before, REQUESTS, **unmatched) + 1
    odd = {"method": "OTHER", "route": "/healthz", "status": "405"}
    assert sample(after, REQUESTS, **odd) == sample(before, REQUESTS, **odd) + 1
    assert path not in after
    assert "PROPFIND" not in after


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(
        RedisSettings.from_dsn(settings.require_redis_url()), default_queue_name=settings.queue_name
    )
    yield pool
    await pool.aclose()


async def test_scrape_time_gauges_read_the_outbox_queue_and_endpoints(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    engine: AsyncEngine,
    queue: ArqRedis,
    settings: Settings,
) -> None:
    empty = await scrape(anonymous)
    assert sample(empty, "retention_outbox_backlog_events") == 0
    assert sample(empty, "retention_outbox_oldest_event_age_seconds") == 0
    assert sample(empty, "retention_webhook_endpoints_disabled") == 0

    customer = (await client.post("/v1/customers", json={"name": "Li Lei"})).json()
    for when in ("2026-10-01T09:00:00+08:00", "2026-10-02T09:00:00+08:00"):
        visit = {"customer_id": customer["id"], "kind": "visit", "occurred_at": when}
        assert (await client.post("/v1/interactions", json=visit)).status_code == 201
    async with engine.begin() as conn:  # the older event was written a minute ago
        await conn.execute(
            text(
                "UPDATE outbox_events SET created_at = now() - interval '60 seconds' "
                "WHERE id = (SELECT min(id) FROM outbox_events)"
            )
        )
    hooks = [
        await client.post("/v1/webhooks", json={"url": url, "event_types": ["alert.opened"]})
        for url in ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b")
    ]
    assert all(hook.status_code == 201 for hook in hooks), [hook.text for hook in hooks]
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE webhook_endpoints SET disabled_at = now() WHERE id = :id"),
            {"id": hooks[0].json()["id"]},
        )
    ready_id, deferred_id = (f"{settings.queue_name}:test:{uuid.uuid4()}" for _ in range(2))
    before = await scrape(anonymous)
    await queue.enqueue_job("process_events", [], _job_id=ready_id)
    await queue.enqueue_job("process_events", [], _job_id=deferred_id, _defer_by=3600)
    try:
        after = await scrape(anonymous)
    finally:
        await queue.zrem(settings.queue_name, ready_id, deferred_id)

    assert sample(after, "retention_outbox_backlog_events") == 2
    assert 60 <= sample(after, "retention_outbox_oldest_event_age_seconds") < 3600
    assert sample(after, "retention_webhook_endpoints_disabled") == 1
    for state in ("ready", "deferred"):
        gauge = "retention_queue_jobs"
        assert sample(after, gauge, state=state) == sample(before, gauge, state=state) + 1


async def test_a_metrics_token_closes_the_endpoint(
    app: FastAPI, anonymous: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await anonymous.get("/metrics")).status_code == 200  # open by default
    app.state.settings = settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    try:
        assert_problem(await anonymous.get("/metrics"), 401)
        wrong = await anonymous.get("/metrics", headers={"Authorization": "Bearer guess"})
        assert_problem(wrong, 401)
        right = await anonymous.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert right.status_code == 200
        assert "retention_http_request_duration_seconds" in right.text
    finally:
        app.state.settings = settings

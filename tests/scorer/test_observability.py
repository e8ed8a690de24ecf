"""What the worker reports: scoring, alert and webhook metrics (scraped from the API process,
which shares this test process, and from the worker's own metrics server), and log lines that
name the job and the request behind it."""

import random
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core import metrics
from services.core.config import Settings
from services.scorer.jobs.webhooks import deliver
from tests.helpers import count_rows
from tests.logcapture import captured_logs
from tests.metricsdata import sample, scrape
from tests.receiver import Receiver
from tests.scorer.workers import run_burst


async def test_a_scoring_run_is_counted(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    relay: Callable[..., Awaitable[int]],
) -> None:
    rule = {
        "name": "Any complaint",
        "kind": "complaints",
        "subject": "customer",
        "params": {"count": 1},
        "severity": "high",
    }
    assert (await client.post("/v1/alert-rules", json=rule)).status_code == 201
    channel = (await client.post("/v1/channels", json={"name": "East", "type": "agent"})).json()
    customer = await client.post(
        "/v1/customers", json={"name": "张伟", "channel_id": channel["id"]}
    )
    complaint = {
        "customer_id": customer.json()["id"],
        "kind": "complaint",
        "occurred_at": "2026-11-01T09:00:00+08:00",
        "summary": "late delivery",
    }
    before = await scrape(anonymous)
    assert (await client.post("/v1/interactions", json=complaint)).status_code == 201

    assert await relay() == 1
    worker = await run_burst(settings)
    assert (worker.jobs_complete, worker.jobs_failed) == (2, 0)  # events, then the channel

    after = await scrape(anonymous)
    opened = await count_rows(engine, "alerts", "subject = 'customer'")
    mine = "rule_id = (SELECT id FROM alert_rules WHERE name = 'Any complaint')"
    assert await count_rows(engine, "alerts", mine) == 1
    increments = {
        ("retention_outbox_relayed_events_total", ()): 1,
        ("retention_scores_computed_total", (("subject", "customer"),)): 1,
        ("retention_scores_computed_total", (("subject", "channel"),)): 1,
        # The complaint rule, and any default rule a new customer trips (such as turning red).
        ("retention_alerts_opened_total", (("subject", "customer"),)): opened,
        ("retention_scoring_lag_seconds_count", ()): 1,
    }
    for (name, labels), increment in increments.items():
        assert sample(after, name, **dict(labels)) == sample(before, name, **dict(labels)) + (
            increment
        ), name
    assert sample(after, "retention_scoring_lag_seconds_sum") > sample(
        before, "retention_scoring_lag_seconds_sum"
    )


async def test_a_job_a_request_started_logs_under_its_request_id(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    relay: Callable[..., Awaitable[int]],
) -> None:
    assert (await client.post("/v1/customers", json={"name": "Han Mei"})).status_code == 201
    requested = await client.post(
        "/v1/scoring/recompute", json={}, headers={"X-Request-ID": "recompute-42"}
    )
    assert requested.status_code == 202, requested.text
    job_id = requested.json()["id"]
    async with engine.connect() as conn:
        payload = await conn.scalar(text("SELECT payload FROM outbox_events"))
    assert payload["request_id"] == "recompute-42"

    assert await relay() == 1
    with captured_logs() as logs:
        await run_burst(settings)

    [finished] = logs.find(logger="services.scorer.jobs.scoring", request_id="recompute-42")
    assert finished["event"] == f"recompute job {job_id} done, customers scored: 1"
    assert finished["job_id"] == f"{settings.queue_name}:job:{job_id}"
    # arq's own lines are JSON too and name the job they are about.
    arq_lines = logs.find(logger="arq.worker", job_id=f"{settings.queue_name}:job:{job_id}")
    assert any("run_recompute" in line["event"] for line in arq_lines), arq_lines
    # The recompute asked for a report refresh, through the outbox: the event the worker
    # wrote names the same request, for the refresh job to log under.
    async with engine.connect() as conn:
        refresh = await conn.scalar(
            text("SELECT payload FROM outbox_events WHERE payload->>'kind' = 'report_refresh'")
        )
    assert refresh["request_id"] == "recompute-42"


@pytest.fixture
def worker_metrics() -> Iterator[str]:
    """The worker's metrics server, as `retention worker` starts it, on a free port."""
    server = metrics.serve_worker_metrics("127.0.0.1", 0)
    assert server is not None
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()


async def _send_pending(app: FastAPI, settings: Settings, endpoint_id: str) -> None:
    async with app.state.sessionmaker() as session:
        ids = list(
            (
                await session.scalars(
                    text(
                        "SELECT id FROM webhook_deliveries "
                        "WHERE endpoint_id = :e AND status = 'pending'"
                    ),
                    {"e": endpoint_id},
                )
            ).all()
        )
    assert ids
    async with httpx.AsyncClient() as http:
        await deliver(
            app.state.sessionmaker, http, settings, uuid.UUID(endpoint_id), ids, random.Random(3)
        )


async def test_webhook_attempts_are_counted_by_outcome(
    app: FastAPI,
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    settings: Settings,
    worker_metrics: str,
) -> None:
    async def counts() -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            text_ = await scrape(http, worker_metrics)
        return {
            outcome: (
                sample(text_, "retention_webhook_attempts_total", outcome=outcome),
                sample(text_, "retention_webhook_attempt_duration_seconds_count", outcome=outcome),
            )
            for outcome in ("delivered", "gone", "refused")
        }

    with Receiver() as receiver:
        # A URL with a credential in its query, as some receivers want: it stays out of logs.
        url = f"{receiver.url}/hooks?token=tok-8d1f93"
        created = await client.post("/v1/webhooks", json={"url": url, "event_types": ["*"]})
        assert created.status_code == 201, created.text
        hook = created.json()["id"]
        before = await counts()

        assert (await client.post(f"/v1/webhooks/{hook}/test")).status_code == 202
        with captured_logs() as logs:
            await _send_pending(app, settings, hook)
        assert receiver.wait_for(1)[0].query == "token=tok-8d1f93"
        assert "tok-8d1f93" not in logs.text
        delivered = await counts()

        receiver.respond(status=410)
        assert (await client.post(f"/v1/webhooks/{hook}/test")).status_code == 202
        await _send_pending(app, settings, hook)
        gone = await counts()

    assert delivered["delivered"] == (before["delivered"][0] + 1, before["delivered"][1] + 1)
    assert delivered["gone"] == before["gone"]
    assert gone["gone"] == (before["gone"][0] + 1, before["gone"][1] + 1)
    assert gone["delivered"] == delivered["delivered"]
    # The 410 disabled the endpoint, which the API's gauge shows.
    assert sample(await scrape(anonymous), "retention_webhook_endpoints_disabled") == 1

    private = await client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/private", "event_types": ["webhook.test"]}
    )
    assert private.status_code == 201, private.text
    assert (await client.post(f"/v1/webhooks/{private.json()['id']}/test")).status_code == 202
    strict = settings.model_copy(update={"webhook_allow_private": False})
    await _send_pending(app, strict, private.json()["id"])
    refused = await counts()
    assert refused["refused"][0] == before["refused"][0] + 1
    assert refused["refused"][1] == before["refused"][1]  # nothing was sent, so no latency

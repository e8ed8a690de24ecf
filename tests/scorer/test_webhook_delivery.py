"""Webhook delivery against a real receiver: signatures, the fault matrix, disabling, leases."""

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from arq import ArqRedis
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from services.core.config import Settings
from services.core.db import session_scope
from services.core.models import WebhookEndpoint
from services.core.webhooks.publish import publish
from services.core.webhooks.signing import new_secret
from services.scorer.dispatch import dispatch_once
from services.scorer.jobs import webhooks as webhook_jobs
from services.scorer.jobs.webhooks import deliver
from tests.conftest import BOX, SECRET_KEY
from tests.helpers import count_rows
from tests.receiver import Receiver, closed_port
from tests.scorer.workers import run_burst

SUBJECT = uuid.UUID("0196f5d2-9a10-7c44-8e21-5b6c7d8e9f01")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def _endpoint(
    sessionmaker: async_sessionmaker[AsyncSession],
    url: str,
    types: tuple[str, ...] = ("*",),
    **values: Any,
) -> WebhookEndpoint:
    """An endpoint whose secrets (a new one, and `previous_secret` if given) are stored
    encrypted, as the API stores them: `BOX.decrypt(endpoint.secret)` is the plaintext."""
    if values.get("previous_secret") is not None:
        values["previous_secret"] = BOX.encrypt(values["previous_secret"])
    async with session_scope(sessionmaker) as session:
        endpoint = WebhookEndpoint(
            url=url, event_types=list(types), secret=BOX.encrypt(new_secret()), **values
        )
        session.add(endpoint)
        await session.flush()
        await session.refresh(endpoint)
    return endpoint


async def _publish(
    sessionmaker: async_sessionmaker[AsyncSession], data: dict[str, Any] | None = None
) -> int:
    async with session_scope(sessionmaker) as session:
        event = data or {"customer_id": str(SUBJECT), "score": 38.5, "band": "red"}
        return await publish(session, "customer.band.changed", [(SUBJECT, event)])


async def _deliveries(engine: AsyncEngine, endpoint_id: uuid.UUID) -> list[Any]:
    async with engine.connect() as conn:
        query = text(
            "SELECT id, message_id, status, attempts, next_attempt_at, last_status_code, "
            "last_error FROM webhook_deliveries WHERE endpoint_id = :e ORDER BY created_at"
        )
        return list((await conn.execute(query, {"e": endpoint_id})).all())


async def _endpoint_state(engine: AsyncEngine, endpoint_id: uuid.UUID) -> Any:
    async with engine.connect() as conn:
        query = text(
            "SELECT failing_since, disabled_at, disabled_reason FROM webhook_endpoints "
            "WHERE id = :e"
        )
        return (await conn.execute(query, {"e": endpoint_id})).one()


async def _send_due(
    app: FastAPI, http: httpx.AsyncClient, settings: Settings, endpoint_id: uuid.UUID
) -> int:
    """What a deliver job does with every pending delivery of the endpoint, due or not."""
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
    sessionmaker = app.state.sessionmaker
    return await deliver(sessionmaker, http, settings, endpoint_id, ids, random.Random(7))


async def test_a_delivery_is_signed_per_standard_webhooks(
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    endpoint = await _endpoint(app.state.sessionmaker, receiver.url)
    assert await _publish(app.state.sessionmaker) == 1
    assert await _send_due(app, http, settings, endpoint.id) == 1

    (request,) = receiver.requests
    payload = Webhook(BOX.decrypt(endpoint.secret)).verify(request.body, dict(request.headers))
    assert payload["type"] == "customer.band.changed"
    assert payload["data"] == {
        "customer_id": str(SUBJECT),
        "score": 38.5,
        "band": "red",
        "sequence": 1,
    }
    (delivery,) = await _deliveries(engine, endpoint.id)
    assert request.headers["webhook-id"] == delivery.message_id
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)


async def test_each_subject_numbers_its_events(
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    await _endpoint(app.state.sessionmaker, receiver.url)
    async with session_scope(app.state.sessionmaker) as session:
        other = uuid.uuid4()
        events = [(SUBJECT, {"n": 1}), (other, {"n": 2}), (SUBJECT, {"n": 3})]
        await publish(session, "customer.health.changed", events)
    await _publish(app.state.sessionmaker, {"n": 4})
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT subject_id, sequence, body->'data'->>'n' AS n, "
                    "body->'data'->>'sequence' AS in_body FROM webhook_messages ORDER BY n"
                )
            )
        ).all()
    assert [(r.subject_id, r.sequence, r.n) for r in rows] == [
        (SUBJECT, 1, "1"),
        (other, 1, "2"),
        (SUBJECT, 2, "3"),
        (SUBJECT, 3, "4"),
    ]
    assert all(int(r.in_body) == r.sequence for r in rows)


async def test_nothing_is_stored_without_a_subscriber(app: FastAPI, engine: AsyncEngine) -> None:
    await _endpoint(app.state.sessionmaker, "https://example.com/hook", ("alert.opened",))
    assert await _publish(app.state.sessionmaker) == 0
    assert await count_rows(engine, "webhook_messages") == 0


async def test_rotation_signs_with_both_secrets(
    app: FastAPI, settings: Settings, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    old, new = new_secret(), new_secret()
    endpoint = await _endpoint(
        app.state.sessionmaker,
        receiver.url,
        previous_secret=old,
        previous_secret_expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    await _publish(app.state.sessionmaker)
    await _send_due(app, http, settings, endpoint.id)
    (request,) = receiver.requests
    for secret in (old, BOX.decrypt(endpoint.secret)):
        Webhook(secret).verify(request.body, dict(request.headers))
    with pytest.raises(Exception, match="signature"):
        Webhook(new).verify(request.body, dict(request.headers))


async def test_an_expired_previous_secret_no_longer_signs(
    app: FastAPI, settings: Settings, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    old = new_secret()
    endpoint = await _endpoint(
        app.state.sessionmaker,
        receiver.url,
        previous_secret=old,
        previous_secret_expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    await _publish(app.state.sessionmaker)
    await _send_due(app, http, settings, endpoint.id)
    (request,) = receiver.requests
    assert len(request.headers["webhook-signature"].split()) == 1
    Webhook(BOX.decrypt(endpoint.secret)).verify(request.body, dict(request.headers))


async def test_a_failure_then_success_is_one_delivery_under_one_id(
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    endpoint = await _endpoint(app.state.sessionmaker, receiver.url)
    await _publish(app.state.sessionmaker)
    receiver.respond(status=500, body="try later")
    before = datetime.now(UTC)
    assert await _send_due(app, http, settings, endpoint.id) == 0
    (delivery,) = await _deliveries(engine, endpoint.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    # the first step of the schedule: 5 s, give or take 20 %
    assert before + timedelta(seconds=4) <= delivery.next_attempt_at
    assert delivery.next_attempt_at <= datetime.now(UTC) + timedelta(seconds=6)

    assert await _send_due(app, http, settings, endpoint.id) == 1
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.message_id
    assert first.body == second.body
    async with engine.connect() as conn:
        attempts = (
            await conn.execute(
                text(
                    "SELECT status_code, response_excerpt FROM webhook_attempts "
                    "WHERE delivery_id = :d ORDER BY attempted_at"
                ),
                {"d": delivery.id},
            )
        ).all()
    assert [(a.status_code, a.response_excerpt) for a in attempts] == [
        (500, "try later"),
        (200, None),
    ]


@pytest.mark.parametrize(
    ("status", "headers", "earliest"),
    [
        (503, {"Retry-After": "120"}, timedelta(seconds=120)),
        (429, {}, timedelta(seconds=4)),
        (301, {"Location": "https://example.com/elsewhere"}, timedelta(seconds=4)),
        (400, {}, timedelta(seconds=4)),
    ],
)
async def test_failures_are_retried_later(
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    http: httpx.AsyncClient,
    receiver: Receiver,
    status: int,
    headers: dict[str, str],
    earliest: timedelta,
) -> None:
    endpoint = await _endpoint(app.state.sessionmaker, receiver.url)
    await _publish(app.state.sessionmaker)
    receiver.respond(status=status, headers=headers)
    before = datetime.now(UTC)
    await _send_due(app, http, settings, endpoint.id)
    (delivery,) = await _deliveries(engine, endpoint.id)
    assert (delivery.status, delivery.last_status_code) == ("pending", status)
    assert delivery.next_attempt_at >= before + earliest
    assert len(receiver.requests) == 1  # a redirect is not followed


async def test_a_slow_receiver_times_out(
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    endpoint = await _endpoint(app.state.sessionmaker, receiver.url)
    await _publish(app.state.sessionmaker)
    receiver.respond(status=200, delay=5.0)
    impatient = settings.model_copy(update={"webhook_timeout_seconds": 0.5})
    assert await _send_due(app, http, impatient, endpoint.id) == 0
    (delivery,) = await _deliveries(engine, endpoint.id)
    assert delivery.status == "pending"
    assert delivery.last_status_code is None
    assert "timeout" in delivery.last_error


async def test_a_closed_port_is_a_failed_attempt(
    app: FastAPI, engine: AsyncEngine, settings: Settings, http: httpx.AsyncClient
) -> None:
    endpoint = await _endpoint(app.state.sessionmaker, f"http://127.0.0.1:{closed_port()}/hook")
    await _publish(app.state.sessionmaker)
    await _send_due(app, http, settings, endpoint.id)
    (delivery,) = await _deliveries(engine, endpoint.id)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "connection" in delivery.last_error


async def test_private_targets_are_refused_unless_allowed(
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    endpoint = await _endpoint(app.state.sessionmaker, receiver.url)
    await _publish(app.state.sessionmaker)
    strict = settings.model_copy(update={"webhook_allow_private": False})
    await _send_due(app, http, strict, endpoint.id)
    assert receiver.requests == []
    (delivery,) = await _deliveries(engine, endpoint.id)
    assert delivery.status == "pending"
    assert delivery.last_error.startswith("refused:")


async def test_gone_disables_the_endpoint_and_tells_the_others(
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    gone = await _endpoint(app.state.sessionmaker, receiver.url, ("customer.band.changed",))
    watcher = await _endpoint(app.state.sessionmaker, "https://example.com/ops")
    await _publish(app.state.sessionmaker)
    receiver.respond(status=410)
    await _send_due(app, http, settings, gone.id)

    (delivery,) = await _deliveries(engine, gone.id)
    assert delivery.status == "failed"
    row = await _endpoint_state(engine, gone.id)
    async with engine.connect() as conn:
        notices = (
            await conn.execute(
                text(
                    "SELECT m.body FROM webhook_deliveries d JOIN webhook_messages m "
                    "ON m.id = d.message_id WHERE d.endpoint_id = :e AND m.type = :t"
                ),
                {"e": watcher.id, "t": "webhook.endpoint.disabled"},
            )
        ).all()
    assert row.disabled_at is not None
    assert "410" in row.disabled_reason
    (notice,) = notices
    assert notice.body["data"]["endpoint_id"] == str(gone.id)


async def test_an_endpoint_failing_for_days_is_disabled(
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    failing_since = datetime.now(UTC) - timedelta(hours=settings.webhook_disable_after_hours + 1)
    endpoint = await _endpoint(app.state.sessionmaker, receiver.url, failing_since=failing_since)
    await _publish(app.state.sessionmaker)
    receiver.respond(status=502)
    await _send_due(app, http, settings, endpoint.id)
    reason = (await _endpoint_state(engine, endpoint.id)).disabled_reason
    assert reason is not None
    assert "failed since" in reason


async def test_a_success_clears_the_failing_streak(
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    endpoint = await _endpoint(
        app.state.sessionmaker, receiver.url, failing_since=datetime.now(UTC) - timedelta(hours=1)
    )
    await _publish(app.state.sessionmaker)
    await _send_due(app, http, settings, endpoint.id)
    row = await _endpoint_state(engine, endpoint.id)
    assert (row.failing_since, row.disabled_at) == (None, None)


async def test_a_job_run_twice_sends_once(
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    endpoint = await _endpoint(app.state.sessionmaker, receiver.url)
    await _publish(app.state.sessionmaker)
    (delivery,) = await _deliveries(engine, endpoint.id)
    for _ in range(2):  # arq re-running the job after its outcome was recorded
        await deliver(
            app.state.sessionmaker, http, settings, endpoint.id, [delivery.id], random.Random(1)
        )
    assert len(receiver.requests) == 1
    assert await count_rows(engine, "webhook_attempts") == 1


async def test_the_worker_dispatches_and_delivers(
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    arq_redis: ArqRedis,
    receiver: Receiver,
) -> None:
    endpoint = await _endpoint(app.state.sessionmaker, receiver.url)
    for n in range(3):
        await _publish(app.state.sessionmaker, {"n": n})
    assert await dispatch_once(app.state.sessionmaker, arq_redis, settings.queue_name) == 3
    # claimed: a second dispatcher finds nothing until the lease runs out
    assert await dispatch_once(app.state.sessionmaker, arq_redis, settings.queue_name) == 0
    await run_burst(settings)
    receiver.wait_for(3, timeout=10)
    assert {d.status for d in await _deliveries(engine, endpoint.id)} == {"delivered"}
    sequences = [orjson.loads(r.body)["data"]["sequence"] for r in receiver.requests]
    assert sorted(sequences) == [1, 2, 3]


def _worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.require_database_url(),
        "REDIS_URL": settings.require_redis_url(),
        "RETENTION_QUEUE_NAME": settings.queue_name,
        "RETENTION_WEBHOOK_ALLOW_PRIVATE": "true",
        "RETENTION_SECRET_KEY": SECRET_KEY,
    }
    return subprocess.Popen([sys.executable, "-m", "services.cli", "worker"], env=env)


async def test_a_worker_killed_mid_send_delivers_under_the_same_id(
    app: FastAPI, engine: AsyncEngine, settings: Settings, arq_redis: ArqRedis, receiver: Receiver
) -> None:
    endpoint = await _endpoint(app.state.sessionmaker, receiver.url)
    await _publish(app.state.sessionmaker)
    receiver.respond(status=200, delay=30.0)
    worker = _worker(settings)
    try:
        await asyncio.to_thread(receiver.wait_for, 1, 30)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    (delivery,) = await _deliveries(engine, endpoint.id)
    assert (delivery.status, delivery.attempts) == ("pending", 0)  # nothing was recorded

    async with engine.begin() as conn:  # the claim's lease runs out
        await conn.execute(
            text("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = :d"),
            {"d": delivery.id},
        )
    worker = _worker(settings)
    try:
        await asyncio.to_thread(receiver.wait_for, 2, 30)
        for _ in range(100):
            (delivery,) = await _deliveries(engine, endpoint.id)
            if delivery.status == "delivered":
                break
            await asyncio.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.message_id
    assert (delivery.status, delivery.attempts) == ("delivered", 1)


async def test_an_oversize_body_is_refused(app: FastAPI, engine: AsyncEngine) -> None:
    await _endpoint(app.state.sessionmaker, "https://example.com/hook")
    with pytest.raises(ValueError, match="exceeds"):
        await _publish(app.state.sessionmaker, {"notes": "长" * 10_000})
    assert await count_rows(engine, "webhook_messages") == 0


async def test_an_evicted_client_closes_only_after_the_job_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhook_jobs, "MAX_CLIENTS", 2)
    monkeypatch.setattr(webhook_jobs, "DELIVERY_JOB_SECONDS", 0.2)
    clients = webhook_jobs.EndpointClients()
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    evicted = clients.get(first)
    kept = clients.get(second)
    clients.get(third)  # evicts the least recently used: the first
    assert not evicted.is_closed  # a job may still be sending through it
    assert clients.get(second) is kept
    await asyncio.sleep(0.4)
    assert evicted.is_closed
    assert clients.get(first) is not evicted
    await clients.aclose()
    assert kept.is_closed

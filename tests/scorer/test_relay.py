"""The outbox relay against real PostgreSQL and Redis: one arq job per batch, nothing lost when
Redis is down, nothing relayed twice by concurrent relays, woken by NOTIFY."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from arq import ArqRedis, Retry
from arq.constants import job_key_prefix
from arq.jobs import Job, JobDef
from fastapi import FastAPI
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core import events
from services.core.config import Settings
from services.core.db import asyncpg_dsn, session_scope
from services.scorer.jobs import events as event_jobs
from services.scorer.jobs.events import MAX_TRIES, PROCESS_EVENTS, process_events
from services.scorer.relay import batch_job_id, relay_forever, relay_pending
from tests.api.customer_rows import insert_customer
from tests.helpers import count_rows
from tests.scorer.workers import run_burst

WHEN = "2026-03-01T10:30:00+08:00"
PENDING = "relayed_at IS NULL"


@pytest.fixture
async def customers(engine: AsyncEngine) -> list[str]:
    return [str(await insert_customer(engine, external_ref=f"C-{n}")) for n in range(3)]


async def post_interactions(client: httpx.AsyncClient, *customer_ids: str) -> None:
    items = [{"customer_id": c, "kind": "visit", "occurred_at": WHEN} for c in customer_ids]
    response = await client.post("/v1/interactions/batch", json={"items": items})
    assert response.status_code == 200, response.text
    assert all(r["status"] == "created" for r in response.json()["results"])


async def queued(redis: ArqRedis, settings: Settings) -> list[JobDef]:
    return sorted(
        await redis.queued_jobs(queue_name=settings.queue_name), key=lambda j: j.args[0][0]
    )


async def test_relay_enqueues_one_job_per_batch(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    arq_redis: ArqRedis,
    relay: Callable[..., Awaitable[int]],
    customers: list[str],
) -> None:
    for customer in customers:
        await post_interactions(client, customer)
    assert await count_rows(engine, "outbox_events", PENDING) == 3

    assert await relay(batch_size=2) == 2
    assert await relay(batch_size=2) == 1
    assert await relay(batch_size=2) == 0

    jobs = await queued(arq_redis, settings)
    assert [(j.function, j.args, j.kwargs) for j in jobs] == [
        (PROCESS_EVENTS, ([1, 2],), {}),
        (PROCESS_EVENTS, ([3],), {}),
    ]
    assert [j.job_id for j in jobs] == [
        batch_job_id(settings.queue_name, [1, 2]),
        batch_job_id(settings.queue_name, [3]),
    ]
    assert await count_rows(engine, "outbox_events", PENDING) == 0


async def test_relay_with_redis_down_keeps_events_pending(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    arq_redis: ArqRedis,
    relay: Callable[..., Awaitable[int]],
    customers: list[str],
) -> None:
    await post_interactions(client, *customers)
    await post_interactions(client, customers[0])
    dead = ArqRedis.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(RedisConnectionError):
            await relay(redis=dead)
    finally:
        await dead.aclose()
    assert await count_rows(engine, "outbox_events", PENDING) == 2
    assert await arq_redis.queued_jobs(queue_name=settings.queue_name) == []

    assert await relay() == 2
    assert [j.args for j in await queued(arq_redis, settings)] == [([1, 2],)]
    assert await count_rows(engine, "outbox_events", PENDING) == 0


async def test_batch_whose_commit_failed_is_enqueued_once(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    arq_redis: ArqRedis,
    relay: Callable[..., Awaitable[int]],
    customers: list[str],
) -> None:
    """The job is in Redis but the mark is lost (the commit fails): the next relay of the same
    batch reuses the job id and arq keeps the one job."""
    await post_interactions(client, customers[0])
    await post_interactions(client, customers[1])
    async with engine.begin() as conn:
        await conn.execute(
            text("""CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN RAISE EXCEPTION 'refused at commit'; END $$""")
        )
        await conn.execute(
            text("""CREATE CONSTRAINT TRIGGER refuse_commit AFTER UPDATE ON outbox_events
                    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()""")
        )
    try:
        with pytest.raises(DBAPIError, match="refused at commit"):
            await relay()
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER refuse_commit ON outbox_events"))
            await conn.execute(text("DROP FUNCTION refuse()"))
    assert await count_rows(engine, "outbox_events", PENDING) == 2
    assert len(await arq_redis.queued_jobs(queue_name=settings.queue_name)) == 1

    assert await relay() == 2
    assert [j.args for j in await queued(arq_redis, settings)] == [([1, 2],)]
    assert await count_rows(engine, "outbox_events", PENDING) == 0


async def test_concurrent_relays_never_relay_an_event_twice(
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    arq_redis: ArqRedis,
    customers: list[str],
) -> None:
    total = 300
    async with session_scope(app.state.sessionmaker) as session:
        for n in range(total):
            customer = uuid.UUID(customers[n % len(customers)])
            await events.emit(session, events.INTERACTIONS_CREATED, [], [customer])

    relayed = await asyncio.gather(
        *(
            relay_pending(app.state.sessionmaker, arq_redis, settings.queue_name, batch_size=7)
            for _ in range(6)
        )
    )
    assert sum(relayed) == total
    assert sum(1 for n in relayed if n > 0) > 1, "the relays did not run side by side"

    jobs = await arq_redis.queued_jobs(queue_name=settings.queue_name)
    relayed_ids = [i for job in jobs for i in job.args[0]]
    assert len(relayed_ids) == total
    assert sorted(relayed_ids) == list(range(1, total + 1))
    assert all(len(job.args[0]) <= 7 for job in jobs)
    assert await count_rows(engine, "outbox_events", PENDING) == 0


async def test_api_write_to_processed_job(
    client: httpx.AsyncClient,
    settings: Settings,
    arq_redis: ArqRedis,
    relay: Callable[..., Awaitable[int]],
    customers: list[str],
) -> None:
    await post_interactions(client, customers[0], customers[1], customers[0])
    await post_interactions(client, customers[1])
    assert await relay() == 2

    worker = await run_burst(settings)
    assert (worker.jobs_complete, worker.jobs_failed, worker.jobs_retried) == (1, 0, 0)

    job = Job(batch_job_id(settings.queue_name, [1, 2]), arq_redis)
    info = await job.result_info()
    assert info is not None
    assert info.success, info.result
    assert info.function == PROCESS_EVENTS
    assert info.result["events"] == 2
    assert info.result["customers"] == 2
    assert await arq_redis.queued_jobs(queue_name=settings.queue_name) == []


async def _listening(engine: AsyncEngine) -> int:
    return await count_rows(
        engine,
        "pg_stat_activity",
        "datname = current_database() AND query LIKE 'LISTEN %'",
    )


async def _until(condition: Callable[[], Awaitable[bool]], seconds: float) -> float:
    """Seconds until `condition` held; fails after `seconds`."""
    start = time.monotonic()
    while not await condition():
        assert time.monotonic() - start < seconds, "timed out"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


@asynccontextmanager
async def running_relay(
    app: FastAPI,
    arq_redis: ArqRedis,
    settings: Settings,
    *,
    poll_seconds: float,
    previous_job_wait: float,
) -> AsyncIterator[asyncio.Task[None]]:
    """`relay_forever` on the test's database and queue, cancelled at the end of the block."""
    task = asyncio.create_task(
        relay_forever(
            app.state.sessionmaker,
            arq_redis,
            settings.queue_name,
            asyncpg_dsn(settings.require_database_url()),
            poll_seconds=poll_seconds,
            previous_job_wait=previous_job_wait,
        )
    )
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.wait([task])


async def test_relay_forever_wakes_on_notify(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    arq_redis: ArqRedis,
    customers: list[str],
) -> None:
    async def drained() -> bool:
        return await count_rows(engine, "outbox_events", PENDING) == 0

    await post_interactions(client, customers[0])
    # previous_job_wait=0: no worker runs the jobs here
    async with running_relay(
        app, arq_redis, settings, poll_seconds=30, previous_job_wait=0
    ) as task:
        # the first pass (which follows LISTEN) relays what was already pending
        await _until(drained, 5)
        assert await _listening(engine) == 1

        await post_interactions(client, customers[1])
        assert await _until(drained, 3) < 3
        assert not task.done()
    assert task.cancelled()
    assert [j.args for j in await queued(arq_redis, settings)] == [([1],), ([2],)]
    await _until(lambda: _zero(_listening(engine)), 3)


async def _zero(count: Awaitable[int]) -> bool:
    return await count == 0


async def test_relay_forever_waits_for_its_last_job_and_sends_what_came_meanwhile_as_one(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    arq_redis: ArqRedis,
    customers: list[str],
) -> None:
    async def pending() -> int:
        return await count_rows(engine, "outbox_events", PENDING)

    async with running_relay(
        app, arq_redis, settings, poll_seconds=0.05, previous_job_wait=30
    ) as task:
        await post_interactions(client, customers[0])
        await _until(lambda: _zero(pending()), 5)
        await post_interactions(client, customers[1])
        await post_interactions(client, customers[2])
        await asyncio.sleep(0.5)
        assert await pending() == 2, "held while the first job has not run"
        # The first job runs: it leaves the queue, as a worker would take it.
        first = batch_job_id(settings.queue_name, [1])
        await arq_redis.zrem(settings.queue_name, first)
        await arq_redis.delete(job_key_prefix + first)
        await _until(lambda: _zero(pending()), 3)
        assert not task.done()
    assert [j.args for j in await queued(arq_redis, settings)] == [([2, 3],)]


async def test_a_job_that_never_runs_holds_the_relay_back_only_so_long(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    arq_redis: ArqRedis,
    customers: list[str],
) -> None:
    async with running_relay(app, arq_redis, settings, poll_seconds=0.05, previous_job_wait=0.3):
        for customer in customers[:2]:
            await post_interactions(client, customer)
            await _until(lambda: _zero(count_rows(engine, "outbox_events", PENDING)), 5)
    assert [j.args for j in await queued(arq_redis, settings)] == [([1],), ([2],)]


async def test_relay_forever_survives_redis_errors(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    arq_redis: ArqRedis,
    customers: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = 3
    enqueue = arq_redis.enqueue_job

    async def flaky(*args: Any, **kwargs: Any) -> Job | None:
        nonlocal failures
        if failures:
            failures -= 1
            raise RedisConnectionError("Redis is down")
        return await enqueue(*args, **kwargs)

    monkeypatch.setattr(arq_redis, "enqueue_job", flaky)
    await post_interactions(client, customers[0])
    async with running_relay(
        app, arq_redis, settings, poll_seconds=0.05, previous_job_wait=0
    ) as task:
        await _until(lambda: _zero(count_rows(engine, "outbox_events", PENDING)), 5)
        assert failures == 0
        await post_interactions(client, customers[1])
        await _until(lambda: _zero(count_rows(engine, "outbox_events", PENDING)), 3)
        assert not task.done()
    assert [j.args for j in await queued(arq_redis, settings)] == [([1],), ([2],)]


async def test_process_events_retries_failures_then_gives_the_real_error(
    app: FastAPI,
    client: httpx.AsyncClient,
    customers: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[uuid.UUID]] = []

    async def failing(ctx: dict[str, Any], customer_ids: list[uuid.UUID]) -> int:
        calls.append(customer_ids)
        raise RuntimeError("database restarting")

    monkeypatch.setattr(event_jobs, "rescore_customers", failing)
    await post_interactions(client, customers[1], customers[0])
    ctx: dict[str, Any] = {"sessionmaker": app.state.sessionmaker, "job_try": 1}
    with pytest.raises(Retry) as retry:
        await process_events(ctx, [1, 404])
    assert retry.value.defer_score == 1000
    with pytest.raises(RuntimeError, match="restarting"):
        await process_events({**ctx, "job_try": MAX_TRIES}, [1])
    assert calls == [sorted(uuid.UUID(c) for c in customers[:2])] * 2

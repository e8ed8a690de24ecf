"""Two scorer workers on one queue, as two replicas run them: a burst of writes through the API is
relayed and scored exactly once, whichever worker's relay claims an event and whichever worker
runs its job."""

import asyncio
import time
import warnings
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from arq import ArqRedis
from arq.jobs import Job
from arq.worker import Worker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import Settings
from services.scorer.worker import worker_options
from tests.api.customer_rows import insert_customer
from tests.helpers import count_rows

CUSTOMERS = 30
ORDERS_EACH = 3
PER_REQUEST = 1
SENDERS = 4
SETTLE_SECONDS = 60.0


def live_worker(settings: Settings, finished: list[str]) -> Worker:
    """A worker as `retention worker` runs it (relay and dispatcher included), recording the id
    of every job it finishes."""

    async def after_job_end(ctx: dict[str, Any]) -> None:
        finished.append(ctx["job_id"])

    options: dict[str, Any] = {
        **worker_options(settings),
        "handle_signals": False,
        "after_job_end": after_job_end,
    }
    return Worker(**options)


async def stop(worker: Worker, running: asyncio.Task[None]) -> None:
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    with warnings.catch_warnings():
        # arq 0.28 closes its pool with redis-py's deprecated `close()`
        warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
        await worker.close()


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for `condition`; a bound, not a timing assertion: it only keeps a hang finite."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while not await condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        await asyncio.sleep(0.05)


async def fully_scored(engine: AsyncEngine) -> int:
    """Customers whose stored score counts every order of the burst."""
    return await count_rows(
        engine, "customer_health", "(features->>'orders_90d')::int = :n", n=ORDERS_EACH
    )


async def test_two_workers_score_a_burst_exactly_once(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, arq_redis: ArqRedis
) -> None:
    customers = [
        str(await insert_customer(engine, external_ref=f"C-{n}")) for n in range(CUSTOMERS)
    ]
    when = datetime.now(UTC) - timedelta(hours=1)
    items = [
        {
            "customer_id": customer,
            "kind": "order",
            "amount": "100",
            "occurred_at": (when + timedelta(minutes=round_)).isoformat(),
            "external_id": f"burst-{round_}-{n}",
        }
        for round_ in range(ORDERS_EACH)
        for n, customer in enumerate(customers)
    ]
    requests = [items[o : o + PER_REQUEST] for o in range(0, len(items), PER_REQUEST)]

    listeners = "datname = current_database() AND query LIKE 'LISTEN %'"
    already = await count_rows(engine, "pg_stat_activity", listeners)
    finished: list[list[str]] = [[], []]
    workers = [live_worker(settings, done) for done in finished]
    running = [asyncio.create_task(w.async_run()) for w in workers]
    try:

        async def listening() -> bool:
            # each worker LISTENs twice: its outbox relay and its webhook dispatcher
            now = await count_rows(engine, "pg_stat_activity", listeners)
            return now >= already + 2 * len(workers)

        await until(listening, "both workers' relays listening")

        pending = asyncio.Queue[list[dict[str, Any]]]()
        for body in requests:
            pending.put_nowait(body)

        async def sender() -> None:
            while not pending.empty():
                body = pending.get_nowait()
                response = await client.post("/v1/interactions/batch", json={"items": body})
                assert response.status_code == 200, response.text
                assert response.json()["created"] == len(body)

        await asyncio.gather(*(sender() for _ in range(SENDERS)))

        async def settled() -> bool:
            in_progress = [
                k async for k in arq_redis.scan_iter(f"arq:in-progress:{settings.queue_name}:*")
            ]
            return (
                await fully_scored(engine) == CUSTOMERS
                and await count_rows(engine, "outbox_events", "relayed_at IS NULL") == 0
                and await arq_redis.zcard(settings.queue_name) == 0
                and not in_progress
            )

        await until(settled, "every customer scored and the queue drained")
    finally:
        for worker, task in zip(workers, running, strict=True):
            await stop(worker, task)

    for worker in workers:
        assert (worker.jobs_failed, worker.jobs_retried) == (0, 0)
    event_jobs = [
        [job for job in done if job.startswith(f"{settings.queue_name}:events:")]
        for done in finished
    ]
    # Which worker takes which job is arq's choice: each relay waits for its last job to run,
    # so a burst may become a few jobs that one worker happens to take all of.
    assert event_jobs[0] or event_jobs[1]
    assert not set(event_jobs[0]) & set(event_jobs[1]), "a job ran in both workers"

    # Every event the burst wrote went into exactly one job, and that job counted it once.
    async with engine.connect() as conn:
        stored = list((await conn.execute(text("SELECT id FROM outbox_events"))).scalars())
    assert len(stored) == len(requests)
    relayed: list[int] = []
    counted = 0
    for job_id in event_jobs[0] + event_jobs[1]:
        info = await Job(job_id, arq_redis).result_info()
        assert info is not None
        assert info.success, info.result
        relayed.extend(info.args[0])
        counted += info.result["events"]
    assert sorted(relayed) == sorted(stored)
    assert counted == len(stored)

    # Each customer's one current score counts its orders once, not once per worker.
    assert await fully_scored(engine) == CUSTOMERS
    async with engine.connect() as conn:
        scored = await conn.execute(
            text("SELECT customer_id, (features->>'orders_365d')::int FROM customer_health")
        )
        orders = {str(row[0]): row[1] for row in scored}
    assert orders == dict.fromkeys(customers, ORDERS_EACH)

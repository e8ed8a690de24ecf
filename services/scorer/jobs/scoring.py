"""Scoring jobs: thin wrappers that open a transaction per chunk and call the scoring path."""

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import ResponseError
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.db import session_scope
from services.core.logs import bind_request_ids
from services.core.models import Channel, Customer, Job
from services.core.profiles import active_profile
from services.core.reports.refresh import request_refresh
from services.core.scoring.profile import ScoringProfile
from services.scorer.features import Customers, IdRange
from services.scorer.scoring import rescore, rescore_channels
from services.scorer.value_tiers import TierInputs, assign_value_tiers

log = logging.getLogger(__name__)

CHUNK = 10_000
PARALLEL = 2
RUN_RECOMPUTE = "run_recompute"
RESCORE_TOUCHED_CHANNELS = "rescore_touched_channels"
CHANNEL_PASS_SECONDS = 2.0
FINISHED = ("succeeded", "failed")
_COUNT = select(func.count()).select_from(Customer)


_CHUNK_SETTINGS = text(
    "SELECT set_config('max_parallel_workers_per_gather', '0', true),"
    " set_config('work_mem', '32MB', true)"
)
"""Chunks already run side by side on every core: parallel workers inside one chunk's query
would only compete with them. The per-chunk sorts fit in 32 MB instead of spilling to disk."""

_BOUNDARIES = text("""
SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM customers) s
WHERE n % :chunk = 0 ORDER BY id
""")


async def _chunks(
    sessionmaker: async_sessionmaker[AsyncSession], ids: list[uuid.UUID] | None
) -> AsyncIterator[Customers]:
    """The named ids in chunks, or every customer as id ranges of about CHUNK customers: one
    index scan finds the boundaries, and customers added meanwhile fall into some range."""
    if ids is not None:
        for start in range(0, len(ids), CHUNK):
            yield ids[start : start + CHUNK]
        return
    async with sessionmaker() as session:
        starts = list((await session.scalars(_BOUNDARIES, {"chunk": CHUNK})).all())
    ends = [*starts[1:], None] if starts else []
    for start, end in zip(starts, ends, strict=True):
        yield IdRange(start, end)


async def _progress(session: AsyncSession, job_id: str, done: int) -> None:
    await session.execute(
        update(Job)
        .where(Job.id == uuid.UUID(job_id))
        .values(done=done, progress=func.least(1.0, done / func.greatest(Job.total, 1)))
    )


async def finish(session: AsyncSession, job_id: str, status: str, **values: Any) -> None:
    await session.execute(
        update(Job)
        .where(Job.id == uuid.UUID(job_id))
        .values(status=status, finished_at=func.now(), **values)
        .values(progress=1.0 if status == "succeeded" else Job.progress)
    )


async def rescore_customers(ctx: dict[str, Any], customer_ids: list[uuid.UUID]) -> int:
    """Rescore customers touched by events, as of now. Safe to run twice: scores are
    recomputed from stored data, not incremented."""
    as_of = datetime.now(UTC)
    ids = sorted({uuid.UUID(str(i)) for i in customer_ids})
    scored = 0
    for start in range(0, len(ids), CHUNK):
        async with session_scope(ctx["sessionmaker"]) as session:
            profile = await active_profile(session)
            scored += await rescore(session, ids[start : start + CHUNK], as_of, profile)
    await _touch_channels(ctx, ids)
    return scored


async def _channels_of(session: AsyncSession, customer_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    query = (
        select(Customer.channel_id)
        .where(Customer.id.in_(customer_ids), Customer.channel_id.is_not(None))
        .distinct()
    )
    return [i for i in (await session.scalars(query)).all() if i is not None]


def _touched_key(queue: str) -> str:
    return f"{queue}:touched-channels"


async def _touch_channels(ctx: dict[str, Any], customer_ids: list[uuid.UUID]) -> None:
    """Mark the customers' channels for the next channel pass, at most one per
    CHANNEL_PASS_SECONDS: a busy channel would otherwise be rescored by every event job, which
    costs more than the customers themselves and delays every score behind it."""
    async with ctx["sessionmaker"]() as session:
        channel_ids = await _channels_of(session, customer_ids)
    if not channel_ids:
        return
    redis, queue = ctx["redis"], ctx["settings"].queue_name
    await redis.sadd(_touched_key(queue), *(str(c) for c in channel_ids))
    slot = math.floor(time.time() / CHANNEL_PASS_SECONDS) + 1
    await redis.enqueue_job(
        RESCORE_TOUCHED_CHANNELS,
        _job_id=f"{queue}:channels:{slot}",
        _defer_until=datetime.fromtimestamp(slot * CHANNEL_PASS_SECONDS, UTC),
        _queue_name=queue,
    )


async def rescore_touched_channels(ctx: dict[str, Any]) -> int:
    """Rescore the channels marked since the last pass. The set is renamed first, so channels
    marked meanwhile wait for the next pass instead of being dropped; a retry reuses it."""
    redis, queue = ctx["redis"], ctx["settings"].queue_name
    taken = f"{_touched_key(queue)}:{ctx.get('job_id', 'pass')}"
    if not await redis.exists(taken):
        try:
            await redis.rename(_touched_key(queue), taken)
        except ResponseError:  # nothing was marked
            return 0
    channel_ids = [uuid.UUID(m.decode()) for m in await redis.smembers(taken)]
    async with session_scope(ctx["sessionmaker"]) as session:
        profile = await active_profile(session)
        scored = await rescore_channels(session, channel_ids, datetime.now(UTC), profile)
    await redis.delete(taken)
    return scored


async def _rescore_channels_of(
    sessionmaker: async_sessionmaker[AsyncSession],
    customer_ids: list[uuid.UUID] | None,
    as_of: datetime,
) -> None:
    """The channels these customers belong to now, or every channel when None."""
    async with session_scope(sessionmaker) as session:
        if customer_ids is None:
            channel_ids = list((await session.scalars(select(Channel.id))).all())
        else:
            channel_ids = await _channels_of(session, customer_ids)
        if channel_ids:
            await rescore_channels(session, channel_ids, as_of, await active_profile(session))


async def _score_chunks(
    sessionmaker: async_sessionmaker[AsyncSession],
    job_id: str,
    ids: list[uuid.UUID] | None,
    as_of: datetime,
    profile: ScoringProfile,
    tier_inputs: TierInputs | None,
) -> int:
    """Score chunk after chunk, PARALLEL at a time: each chunk is mostly PostgreSQL work on one
    backend, so two in flight keep both cores busy. One profile serves the whole job."""

    async def score(chunk: Customers) -> int:
        async with session_scope(sessionmaker) as session:
            await session.execute(_CHUNK_SETTINGS)
            return await rescore(session, chunk, as_of, profile, tier_inputs)

    scored = 0
    running: set[asyncio.Task[int]] = set()
    try:
        async for chunk in _chunks(sessionmaker, ids):
            if len(running) >= PARALLEL:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                scored += sum(task.result() for task in done)
                async with session_scope(sessionmaker) as session:
                    await _progress(session, job_id, scored)
            running.add(asyncio.create_task(score(chunk)))
        scored += sum(await asyncio.gather(*running))
    finally:
        for task in running:
            task.cancel()
    async with session_scope(sessionmaker) as session:
        await _progress(session, job_id, scored)
    return scored


async def run_recompute(ctx: dict[str, Any], job_id: str, request_id: str | None = None) -> str:
    """`POST /v1/scoring/recompute`: score the named customers, or all, as of the job's time,
    reporting progress on the job row. A rerun after a crash starts over, which is harmless."""
    bind_request_ids([request_id])
    sessionmaker = ctx["sessionmaker"]
    async with session_scope(sessionmaker) as session:
        job = await session.get(Job, uuid.UUID(job_id), with_for_update=True)
        if job is None or job.status in FINISHED:
            return "skipped"
        job.status, job.started_at = "running", datetime.now(UTC)
        as_of = datetime.fromisoformat(job.params["as_of"])
        named = job.params.get("customer_ids")
        ids = [uuid.UUID(i) for i in named] if named else None
        job.total = len(ids) if ids is not None else await session.scalar(_COUNT)
        profile = await active_profile(session)
    try:
        tier_inputs = TierInputs() if ids is None else None
        scored = await _score_chunks(sessionmaker, job_id, ids, as_of, profile, tier_inputs)
        if tier_inputs is not None:
            await assign_value_tiers(sessionmaker, PARALLEL, tier_inputs)
        await _rescore_channels_of(sessionmaker, ids, as_of)
    except Exception as exc:
        async with session_scope(sessionmaker) as session:
            await finish(session, job_id, "failed", errors=[{"message": str(exc)[:500]}])
        raise
    async with session_scope(sessionmaker) as session:
        await finish(
            session, job_id, "succeeded", result={"scored": scored, "as_of": as_of.isoformat()}
        )
        await request_refresh(session, created_by="scheduler", reason=f"recompute {job_id}")
    log.info(
        "recompute job %s done, customers scored: %d", job_id, scored, extra={"scored": scored}
    )
    return "succeeded"


async def scheduled_rescore(ctx: dict[str, Any]) -> str:
    """The daily rescoring that lets time pass: recency decays and quiet customers turn red
    with no new event. It is an ordinary recompute job, visible at `/v1/jobs`."""
    async with session_scope(ctx["sessionmaker"]) as session:
        job = Job(
            kind="recompute",
            params={
                "as_of": datetime.now(UTC).isoformat(),
                "customer_ids": None,
                "reason": "scheduled",
            },
            created_by="scheduler",
        )
        session.add(job)
        await session.flush()
        job_id = str(job.id)
    return await run_recompute(ctx, job_id)

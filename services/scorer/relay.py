"""The outbox relay: hands committed events to arq, a job per batch, never losing one.

Claiming, enqueueing and marking happen in one transaction, so an event is marked relayed only
once its job is in Redis; `FOR UPDATE SKIP LOCKED` lets several workers relay side by side.

While the last job a relay enqueued has not run yet, the relay waits for it (at most
PREVIOUS_JOB_WAIT_SECONDS) before it relays again: events committed meanwhile then go out as one
job. Under a steady stream of writes, jobs would otherwise overlap, rescore the same customers
at once and wait on each other's score rows; when writes are sparse the last job has long
finished and nothing waits."""

import asyncio
import logging
import time

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core import metrics
from services.core.db import session_scope
from services.core.events import OUTBOX_CHANNEL
from services.scorer.jobs.events import PROCESS_EVENTS
from services.scorer.wakeup import drain_on_notify

log = logging.getLogger(__name__)

BATCH_SIZE = 500

# Marked first, enqueued second: a failed enqueue rolls the mark back with the claim.
CLAIM = text("""
WITH claimed AS MATERIALIZED (
  SELECT id FROM outbox_events WHERE relayed_at IS NULL
  ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED
)
UPDATE outbox_events AS e SET relayed_at = now() FROM claimed WHERE e.id = claimed.id
RETURNING e.id
""")


def batch_job_id(queue_name: str, event_ids: list[int]) -> str:
    """Stable per batch, so re-relaying a batch whose commit was lost enqueues nothing new.
    Prefixed by the queue: arq's job and result keys are shared by every queue on a Redis."""
    return f"{queue_name}:events:{event_ids[0]}-{event_ids[-1]}"


PREVIOUS_JOB_WAIT_SECONDS = 5.0
"""A job queued behind others, or retrying, delays the next relay this long at most."""
_POLL_SECONDS = 0.01
_RUN = frozenset({JobStatus.complete, JobStatus.not_found})


async def relay_batch(
    sessionmaker: async_sessionmaker[AsyncSession],
    arq_redis: ArqRedis,
    queue_name: str,
    batch_size: int = BATCH_SIZE,
) -> tuple[int, Job | None]:
    """Relay up to `batch_size` pending events as one job: the number relayed, and the job
    (None when nothing was pending, or the batch's job already existed). Raises (and leaves
    the events pending) when Redis or PostgreSQL fails."""
    async with session_scope(sessionmaker) as session:
        event_ids = sorted((await session.execute(CLAIM, {"n": batch_size})).scalars())
        if not event_ids:
            return 0, None
        job = await arq_redis.enqueue_job(
            PROCESS_EVENTS,
            event_ids,
            _job_id=batch_job_id(queue_name, event_ids),
            _queue_name=queue_name,
        )
    metrics.OUTBOX_RELAYED.inc(len(event_ids))
    return len(event_ids), job


async def until_run(job: Job, seconds: float) -> None:
    """Wait until `job` has run (or is gone), at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and await job.status() not in _RUN:
        await asyncio.sleep(_POLL_SECONDS)


async def relay_pending(
    sessionmaker: async_sessionmaker[AsyncSession],
    arq_redis: ArqRedis,
    queue_name: str,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Relay batches until one comes back short: the outbox is drained (for now)."""
    relayed, _ = await _relay_all(sessionmaker, arq_redis, queue_name, batch_size)
    return relayed


async def _relay_all(
    sessionmaker: async_sessionmaker[AsyncSession],
    arq_redis: ArqRedis,
    queue_name: str,
    batch_size: int,
) -> tuple[int, Job | None]:
    total, last = 0, None
    while True:
        relayed, job = await relay_batch(sessionmaker, arq_redis, queue_name, batch_size)
        total, last = total + relayed, job or last
        if relayed < batch_size:
            return total, last


async def relay_forever(
    sessionmaker: async_sessionmaker[AsyncSession],
    arq_redis: ArqRedis,
    queue_name: str,
    dsn: str,
    *,
    batch_size: int = BATCH_SIZE,
    poll_seconds: float = 1.0,
    previous_job_wait: float = PREVIOUS_JOB_WAIT_SECONDS,
) -> None:
    """Drain the outbox whenever a commit NOTIFYs, and every `poll_seconds` in case a wake-up
    was missed, each time once the previous job has run; only cancellation ends it."""
    previous: Job | None = None

    async def drain() -> None:
        nonlocal previous
        if previous is not None:
            await until_run(previous, previous_job_wait)
        total, previous = await _relay_all(sessionmaker, arq_redis, queue_name, batch_size)
        if total:
            log.debug("relayed %d outbox events", total)

    await drain_on_notify(
        dsn, OUTBOX_CHANNEL, drain, poll_seconds=poll_seconds, what="outbox relay"
    )

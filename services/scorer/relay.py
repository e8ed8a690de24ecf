"""The outbox relay: hands committed events to arq, a job per batch, never losing one.

Claiming, enqueueing and marking happen in one transaction, so an event is marked relayed only
once its job is in Redis; `FOR UPDATE SKIP LOCKED` lets several workers relay side by side."""

import logging

from arq.connections import ArqRedis
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


async def relay_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    arq_redis: ArqRedis,
    queue_name: str,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Relay up to `batch_size` pending events as one job; the number relayed. Raises (and
    leaves the events pending) when Redis or PostgreSQL fails."""
    async with session_scope(sessionmaker) as session:
        event_ids = sorted((await session.execute(CLAIM, {"n": batch_size})).scalars())
        if not event_ids:
            return 0
        await arq_redis.enqueue_job(
            PROCESS_EVENTS,
            event_ids,
            _job_id=batch_job_id(queue_name, event_ids),
            _queue_name=queue_name,
        )
    metrics.OUTBOX_RELAYED.inc(len(event_ids))
    return len(event_ids)


async def relay_pending(
    sessionmaker: async_sessionmaker[AsyncSession],
    arq_redis: ArqRedis,
    queue_name: str,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Relay batches until one comes back short: the outbox is drained (for now)."""
    total = 0
    while True:
        relayed = await relay_once(sessionmaker, arq_redis, queue_name, batch_size)
        total += relayed
        if relayed < batch_size:
            return total


async def relay_forever(
    sessionmaker: async_sessionmaker[AsyncSession],
    arq_redis: ArqRedis,
    queue_name: str,
    dsn: str,
    *,
    batch_size: int = BATCH_SIZE,
    poll_seconds: float = 1.0,
) -> None:
    """Drain the outbox whenever a commit NOTIFYs, and every `poll_seconds` in case a wake-up
    was missed; only cancellation ends it."""

    async def drain() -> None:
        relayed = await relay_pending(sessionmaker, arq_redis, queue_name, batch_size)
        if relayed:
            log.debug("relayed %d outbox events", relayed)

    await drain_on_notify(
        dsn, OUTBOX_CHANNEL, drain, poll_seconds=poll_seconds, what="outbox relay"
    )

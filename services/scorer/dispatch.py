"""The webhook dispatcher: claims due deliveries in batches per endpoint and hands each batch to
arq as a `deliver_webhooks` job.

A claim is a lease: the deliveries' next attempt moves LEASE ahead, in the transaction that
enqueues the job, so a second worker skips them and a job lost with its worker is claimed again
once the lease runs out. New deliveries NOTIFY on commit, which wakes the dispatcher at once;
retries falling due are found by polling."""

from collections import defaultdict

from arq.connections import ArqRedis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.db import session_scope
from services.core.webhooks.publish import DELIVERIES_CHANNEL
from services.scorer.jobs.webhooks import DELIVER_WEBHOOKS
from services.scorer.wakeup import drain_on_notify

CLAIM_SIZE = 500
BATCH_SIZE = 50
"""Deliveries per job: one endpoint's requests, CONCURRENCY of them in flight at a time."""
LEASE_SECONDS = 300

_CLAIM = text("""
WITH due AS MATERIALIZED (
  SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
  WHERE d.status = 'pending' AND d.next_attempt_at <= now()
    AND e.active AND e.disabled_at IS NULL
  ORDER BY d.next_attempt_at LIMIT :n
  FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => :lease)
FROM due WHERE d.id = due.id
RETURNING d.id, d.endpoint_id
""")


async def dispatch_once(
    sessionmaker: async_sessionmaker[AsyncSession], arq_redis: ArqRedis, queue_name: str
) -> int:
    """Claim up to CLAIM_SIZE due deliveries and enqueue them; the number claimed. When Redis
    fails the claim rolls back with the error."""
    async with session_scope(sessionmaker) as session:
        claimed = (await session.execute(_CLAIM, {"n": CLAIM_SIZE, "lease": LEASE_SECONDS})).all()
        by_endpoint: dict[str, list[str]] = defaultdict(list)
        for row in claimed:
            by_endpoint[str(row.endpoint_id)].append(str(row.id))
        for endpoint_id, ids in by_endpoint.items():
            for start in range(0, len(ids), BATCH_SIZE):
                await arq_redis.enqueue_job(
                    DELIVER_WEBHOOKS,
                    endpoint_id,
                    ids[start : start + BATCH_SIZE],
                    _queue_name=queue_name,
                )
    return len(claimed)


async def dispatch_forever(
    sessionmaker: async_sessionmaker[AsyncSession],
    arq_redis: ArqRedis,
    queue_name: str,
    dsn: str,
    *,
    poll_seconds: float = 1.0,
) -> None:
    """Dispatch whenever deliveries commit and every `poll_seconds`; only cancellation ends it."""

    async def drain() -> None:
        while await dispatch_once(sessionmaker, arq_redis, queue_name) == CLAIM_SIZE:
            pass

    await drain_on_notify(
        dsn, DELIVERIES_CHANNEL, drain, poll_seconds=poll_seconds, what="webhook dispatch"
    )

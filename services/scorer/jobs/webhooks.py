"""Webhook delivery: a job sends one endpoint's batch of due deliveries and records every
attempt. A dispatcher (services/scorer/dispatch.py) claims the batches and enqueues the jobs."""

import asyncio
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core import metrics
from services.core.config import Settings
from services.core.crypto import MissingSecretKey, SecretBox, UndecryptableSecret, load_box
from services.core.db import session_scope
from services.core.webhooks.attempt import AttemptResult, attempt
from services.core.webhooks.publish import publish
from services.core.webhooks.retry import Outcome, next_delay
from services.core.webhooks.signing import headers
from services.core.webhooks.targets import UnsafeTarget, check_target

DELIVER_WEBHOOKS = "deliver_webhooks"
CONCURRENCY = 10
"""Requests in flight to one endpoint at a time."""
MAX_CLIENTS = 200
DELIVERY_JOB_SECONDS = 120
"""arq's time limit for one `deliver_webhooks` job."""


class EndpointClients:
    """An HTTP client per endpoint, each with a pool of CONCURRENCY connections: a slow
    endpoint cannot take the connections of the others, and each pool stays small (httpx
    walks every connection of a pool for each request it places, which made one shared pool
    the worker's main CPU cost in bench/alert_latency.py)."""

    def __init__(self) -> None:
        self._clients: dict[uuid.UUID, httpx.AsyncClient] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    def get(self, endpoint_id: uuid.UUID) -> httpx.AsyncClient:
        client = self._clients.pop(endpoint_id, None)
        if client is None:
            if len(self._clients) >= MAX_CLIENTS:  # the least recently used goes
                self._retire(self._clients.pop(next(iter(self._clients))))
            limits = httpx.Limits(
                max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY
            )
            client = httpx.AsyncClient(
                headers={"user-agent": "retention-service webhooks"}, limits=limits
            )
        self._clients[endpoint_id] = client
        return client

    def _retire(self, client: httpx.AsyncClient) -> None:
        """Close an evicted client once any job still sending through it has timed out."""

        async def close_later() -> None:
            await asyncio.sleep(DELIVERY_JOB_SECONDS)
            await client.aclose()

        task = asyncio.get_running_loop().create_task(close_later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for task in list(self._retiring):
            task.cancel()
        for client in clients:
            await client.aclose()


_BATCH = text("""
SELECT d.id, d.attempts, m.id AS message_id, m.body, e.url, e.secret, e.previous_secret,
  e.previous_secret_expires_at
FROM webhook_deliveries d
JOIN webhook_messages m ON m.id = d.message_id
JOIN webhook_endpoints e ON e.id = d.endpoint_id
WHERE d.id = ANY(:ids) AND d.status = 'pending' AND d.endpoint_id = :endpoint
ORDER BY m.created_at, m.id
""")

# Only deliveries still at the attempt count they were sent at: a job that arq re-runs after
# another already recorded the outcome changes nothing.
_RECORD = text("""
WITH r AS (
  SELECT * FROM unnest(
    CAST(:ids AS uuid[]), CAST(:sent_attempts AS int[]), CAST(:statuses AS text[]),
    CAST(:next_at AS timestamptz[]), CAST(:codes AS int[]), CAST(:errors AS text[]),
    CAST(:at AS timestamptz[]), CAST(:latencies AS float8[]), CAST(:excerpts AS text[])
  ) AS r(id, sent_attempts, status, next_at, code, error, at, latency, excerpt)
), updated AS (
  UPDATE webhook_deliveries d SET attempts = r.sent_attempts + 1, status = r.status,
    next_attempt_at = r.next_at, last_status_code = r.code, last_error = r.error,
    finished_at = CASE WHEN r.status = 'pending' THEN NULL ELSE r.at END
  FROM r WHERE d.id = r.id AND d.status = 'pending' AND d.attempts = r.sent_attempts
  RETURNING d.id
)
INSERT INTO webhook_attempts
  (delivery_id, attempted_at, status_code, latency_ms, error, response_excerpt)
SELECT r.id, r.at, r.code, r.latency, r.error, r.excerpt FROM r JOIN updated USING (id)
""")

_HEALTHY = text("""
UPDATE webhook_endpoints SET failing_since = NULL
WHERE id = :endpoint AND failing_since IS NOT NULL
""")

_FAILING = text("""
UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, :since)
WHERE id = :endpoint
RETURNING failing_since
""")

_DISABLE = text("""
UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = :reason,
  updated_at = now(), version = version + 1
WHERE id = :endpoint AND disabled_at IS NULL
RETURNING url
""")


def _secrets(box: SecretBox, row: Any, now: datetime) -> list[str]:
    """The endpoint's signing secrets, decrypted: the current one, and the previous one while
    its overlap lasts."""
    secrets = [box.decrypt(row.secret)]
    expires = row.previous_secret_expires_at
    if row.previous_secret and (expires is None or expires > now):
        secrets.append(box.decrypt(row.previous_secret))
    return secrets


async def _send(
    client: httpx.AsyncClient, row: Any, secrets: list[str], settings: Settings, now: datetime
) -> tuple[datetime, AttemptResult]:
    body = orjson.dumps(row.body)
    signed = headers(row.message_id, int(now.timestamp()), body, secrets)
    sent_at = datetime.now(UTC)
    result = await attempt(client, row.url, body, signed, settings.webhook_timeout_seconds)
    metrics.webhook_attempt(result.outcome, result.latency_ms)
    return sent_at, result


def _refused(reason: str) -> AttemptResult:
    return AttemptResult(
        status=None,
        latency_ms=0.0,
        error=reason,
        response_excerpt="",
        retry_after=None,
        outcome=Outcome.retry,
    )


async def deliver(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    settings: Settings,
    endpoint_id: uuid.UUID,
    delivery_ids: list[uuid.UUID],
    rng: random.Random,
) -> int:
    """Send these deliveries of one endpoint and record the outcome; returns how many were
    delivered. A 410 disables the endpoint; failing everything for the configured time does too."""
    async with sessionmaker() as session:
        rows = (await session.execute(_BATCH, {"ids": delivery_ids, "endpoint": endpoint_id})).all()
    if not rows:
        return 0
    now = datetime.now(UTC)
    results: list[tuple[datetime, AttemptResult]]
    try:
        secrets = _secrets(load_box(settings), rows[0], now)  # one endpoint: the same for all
        await check_target(rows[0].url, settings.webhook_allow_private)
    except (UnsafeTarget, MissingSecretKey, UndecryptableSecret) as exc:
        results = [(now, _refused(f"refused: {exc}")) for _ in rows]
        metrics.WEBHOOK_ATTEMPTS.labels("refused").inc(len(rows))
    else:
        limit = asyncio.Semaphore(CONCURRENCY)

        async def send(row: Any) -> tuple[datetime, AttemptResult]:
            async with limit:
                return await _send(client, row, secrets, settings, now)

        results = list(await asyncio.gather(*(send(row) for row in rows)))
    await _record(sessionmaker, settings, endpoint_id, rows, results, rng)
    return sum(result.outcome is Outcome.delivered for _, result in results)


async def _record(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    endpoint_id: uuid.UUID,
    rows: Sequence[Any],
    results: list[tuple[datetime, AttemptResult]],
    rng: random.Random,
) -> None:
    statuses: list[str] = []
    next_at: list[datetime | None] = []
    for row, (at, result) in zip(rows, results, strict=True):
        if result.outcome is Outcome.delivered:
            statuses.append("delivered")
            next_at.append(None)
            continue
        delay = (
            None
            if result.outcome is Outcome.gone
            else next_delay(row.attempts + 1, result.retry_after, rng)
        )
        statuses.append("failed" if delay is None else "pending")
        next_at.append(None if delay is None else at + delay)
    async with session_scope(sessionmaker) as session:
        await session.execute(
            _RECORD,
            {
                "ids": [row.id for row in rows],
                "sent_attempts": [row.attempts for row in rows],
                "statuses": statuses,
                "next_at": next_at,
                "codes": [result.status for _, result in results],
                "errors": [result.error for _, result in results],
                "at": [at for at, _ in results],
                "latencies": [round(result.latency_ms, 1) for _, result in results],
                "excerpts": [result.response_excerpt or None for _, result in results],
            },
        )
        outcomes = {result.outcome for _, result in results}
        if Outcome.gone in outcomes:
            await _disable(session, endpoint_id, "The endpoint answered 410 Gone.")
        elif Outcome.delivered in outcomes:
            await session.execute(_HEALTHY, {"endpoint": endpoint_id})
        else:
            since = min(at for at, _ in results)
            failing_since = (
                await session.execute(_FAILING, {"endpoint": endpoint_id, "since": since})
            ).scalar_one()
            limit = timedelta(hours=settings.webhook_disable_after_hours)
            if datetime.now(UTC) - failing_since >= limit:
                reason = (
                    f"Every delivery failed since {failing_since.isoformat()} "
                    f"(more than {settings.webhook_disable_after_hours:g} hours)."
                )
                await _disable(session, endpoint_id, reason)


async def _disable(session: AsyncSession, endpoint_id: uuid.UUID, reason: str) -> None:
    url = (await session.execute(_DISABLE, {"endpoint": endpoint_id, "reason": reason})).scalar()
    if url is not None:
        data = {"endpoint_id": str(endpoint_id), "url": url, "reason": reason}
        await publish(session, "webhook.endpoint.disabled", [(endpoint_id, data)])


async def deliver_webhooks(ctx: dict[str, Any], endpoint_id: str, delivery_ids: list[str]) -> int:
    """arq job: one endpoint's claimed batch."""
    endpoint = uuid.UUID(endpoint_id)
    return await deliver(
        ctx["sessionmaker"],
        ctx["http"].get(endpoint),
        ctx["settings"],
        endpoint,
        [uuid.UUID(i) for i in delivery_ids],
        ctx["rng"],
    )

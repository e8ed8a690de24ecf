"""`GET /metrics`: the Prometheus text format. The process metrics (every API process's, summed,
under `retention serve --workers N`), then gauges read at scrape time from PostgreSQL and
Redis: the outbox backlog, the arq queue and disabled webhook endpoints. They are read here
rather than by the worker so that they keep reporting when no worker runs, which is when the
backlog grows."""

import asyncio
import hmac
import logging
import time
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.core import metrics
from services.core.config import Settings
from services.core.errors import Unauthorized

log = logging.getLogger(__name__)

router = APIRouter(tags=["ops"])

SCRAPE_TIMEOUT_SECONDS = 2.0

# Both outbox figures come from the partial index on pending events: cheap at any table size.
_DATABASE = """
SELECT
  (SELECT count(*) FROM outbox_events WHERE relayed_at IS NULL) AS backlog,
  (SELECT extract(epoch FROM clock_timestamp() - created_at) FROM outbox_events
   WHERE relayed_at IS NULL ORDER BY id LIMIT 1) AS oldest,
  (SELECT count(*) FROM webhook_endpoints WHERE disabled_at IS NOT NULL) AS disabled
"""


class _Snapshot(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


async def _database(request: Request) -> list[Metric]:
    row = await request.app.state.rows.fetchrow(_DATABASE)
    return [
        _gauge(
            metrics.OUTBOX_BACKLOG, "Outbox events not yet relayed to the queue.", row["backlog"]
        ),
        _gauge(
            metrics.OUTBOX_OLDEST_AGE,
            "Age of the oldest outbox event not yet relayed; 0 when there is none.",
            float(row["oldest"] or 0.0),
        ),
        _gauge(
            metrics.WEBHOOK_ENDPOINTS_DISABLED,
            "Webhook endpoints disabled for a 410 or for failing for days.",
            row["disabled"],
        ),
    ]


async def _queue(request: Request) -> list[Metric]:
    """arq's queue is a sorted set scored by when each job may start."""
    settings: Settings = request.app.state.settings
    now_ms = int(time.time() * 1000)
    async with request.app.state.redis.pipeline(transaction=False) as pipe:
        pipe.zcard(settings.queue_name)
        pipe.zcount(settings.queue_name, "-inf", now_ms)
        total, ready = await pipe.execute()
    family = GaugeMetricFamily(
        metrics.QUEUE_JOBS,
        "Jobs in the arq queue: ready to start, or deferred (retries, scheduled passes).",
        labels=["state"],
    )
    family.add_metric(["ready"], ready)
    family.add_metric(["deferred"], total - ready)
    return [family]


async def _snapshot(request: Request) -> bytes:
    """The scrape-time gauges; a source that fails or is slow is left out, and logged."""
    families: list[Metric] = []
    for name, read in (("PostgreSQL", _database), ("Redis", _queue)):
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT_SECONDS):
                families += await read(request)
        except Exception as exc:  # noqa: BLE001 - the process metrics are still worth serving
            log.warning(
                "metrics: %s gauges left out (%s)", name, type(exc).__name__, extra={"source": name}
            )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return generate_latest(registry)


def _check_token(request: Request, settings: Settings) -> None:
    if settings.metrics_token is None:
        return
    expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
    sent = request.headers.get("authorization", "").encode()
    if not hmac.compare_digest(sent, expected):
        raise Unauthorized("Send the metrics token as `Authorization: Bearer <token>`.")


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Any:
    """Prometheus text format; open unless `RETENTION_METRICS_TOKEN` is set."""
    _check_token(request, request.app.state.settings)
    body = await asyncio.to_thread(metrics.exposition)
    return Response(body + await _snapshot(request), media_type=CONTENT_TYPE_LATEST)

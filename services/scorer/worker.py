"""The arq worker: `retention worker` runs `WorkerSettings` built from the one Settings object."""

import asyncio
import logging
import random
from typing import Any

from arq import cron, func
from arq.connections import RedisSettings
from arq.worker import Worker

from services.core.config import Settings
from services.core.db import asyncpg_dsn, create_engine, create_sessionmaker
from services.core.heap import freeze_startup_objects
from services.core.logs import bind_job_context
from services.scorer.dispatch import dispatch_forever
from services.scorer.jobs.events import MAX_TRIES, process_events
from services.scorer.jobs.imports import MAX_TRIES as IMPORT_MAX_TRIES
from services.scorer.jobs.imports import RUN_IMPORT, run_import
from services.scorer.jobs.maintenance import maintain_partitions, purge_idempotency_records
from services.scorer.jobs.reports import REFRESH_REPORTS, run_report_refresh
from services.scorer.jobs.scoring import (
    RESCORE_TOUCHED_CHANNELS,
    RUN_RECOMPUTE,
    rescore_touched_channels,
    run_recompute,
    scheduled_rescore,
)
from services.scorer.jobs.sla import CHECK_SLA, check_sla
from services.scorer.jobs.webhooks import (
    DELIVER_WEBHOOKS,
    DELIVERY_JOB_SECONDS,
    EndpointClients,
    deliver_webhooks,
)
from services.scorer.relay import relay_forever

log = logging.getLogger(__name__)

HEALTH_CHECK_SECONDS = 10
# arq starts queued jobs only when it polls Redis. Its default of every 0.5 s adds up to that
# to each event's way to its score and, once all job slots are busy, refills them only twice a
# second; the relay enqueues within milliseconds of a commit (see bench/latency.py).
POLL_DELAY_SECONDS = 0.05
LONG_JOB_SECONDS = 3 * 3600
# Jobs spend most of their time waiting on PostgreSQL or a webhook receiver: arq's default of
# 10 at a time left the process half idle with jobs queueing behind them (bench/alert_latency.py).
MAX_JOBS = 32
# On SIGTERM or Ctrl-C a worker stops taking jobs and gives running ones this long to finish
# (event batches take well under a second, a webhook attempt at most its 15 s timeout); what is
# still running then is cancelled and runs again elsewhere, as every job may.
JOB_COMPLETION_WAIT_SECONDS = 30


def worker_options(settings: Settings) -> dict[str, Any]:
    async def startup(ctx: dict[str, Any]) -> None:
        engine = create_engine(settings)
        ctx["settings"] = settings
        ctx["engine"] = engine
        ctx["sessionmaker"] = create_sessionmaker(engine)
        relay = relay_forever(
            ctx["sessionmaker"],
            ctx["redis"],
            settings.queue_name,
            asyncpg_dsn(settings.require_database_url()),
        )
        dispatch = dispatch_forever(
            ctx["sessionmaker"],
            ctx["redis"],
            settings.queue_name,
            asyncpg_dsn(settings.require_database_url()),
        )
        ctx["http"] = EndpointClients()
        ctx["rng"] = random.Random()
        ctx["loops"] = [
            asyncio.create_task(relay, name="outbox-relay"),
            asyncio.create_task(dispatch, name="webhook-dispatch"),
        ]
        for task in ctx["loops"]:
            task.add_done_callback(_report_loop_end)
        freeze_startup_objects()

    async def shutdown(ctx: dict[str, Any]) -> None:
        loops: list[asyncio.Task[None]] = ctx["loops"]
        for task in loops:
            task.cancel()
        await asyncio.wait(loops)
        await ctx["http"].aclose()
        await ctx["engine"].dispose()

    return {
        "functions": [
            purge_idempotency_records,
            func(process_events, max_tries=MAX_TRIES),
            func(run_recompute, name=RUN_RECOMPUTE, timeout=LONG_JOB_SECONDS, max_tries=3),
            func(run_report_refresh, name=REFRESH_REPORTS, timeout=LONG_JOB_SECONDS, max_tries=3),
            func(run_import, name=RUN_IMPORT, timeout=LONG_JOB_SECONDS, max_tries=IMPORT_MAX_TRIES),
            func(rescore_touched_channels, name=RESCORE_TOUCHED_CHANNELS, max_tries=5),
            func(
                deliver_webhooks, name=DELIVER_WEBHOOKS, max_tries=5, timeout=DELIVERY_JOB_SECONDS
            ),
            func(check_sla, name=CHECK_SLA, max_tries=3),
        ],
        "cron_jobs": [
            cron(purge_idempotency_records, minute={7}, run_at_startup=False),
            cron(maintain_partitions, minute={17}, run_at_startup=True),
            cron(check_sla, run_at_startup=False),  # every minute, at second 0
            cron(
                scheduled_rescore,
                hour={settings.rescore_hour},
                minute={0},
                timeout=LONG_JOB_SECONDS,
                run_at_startup=False,
            ),
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "on_job_start": bind_job_context,
        "redis_settings": RedisSettings.from_dsn(settings.require_redis_url()),
        "queue_name": settings.queue_name,
        "health_check_key": settings.worker_health_key,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "poll_delay": POLL_DELAY_SECONDS,
        "max_jobs": MAX_JOBS,
        "handle_signals": True,
        "job_completion_wait": JOB_COMPLETION_WAIT_SECONDS,
    }


def _report_loop_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("the %s loop stopped", task.get_name(), exc_info=task.exception())


def create_worker(settings: Settings) -> Worker:
    return Worker(**worker_options(settings))

"""The arq worker: `retention worker` runs `WorkerSettings` built from the one Settings object."""

from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker

from services.core.config import Settings
from services.core.db import create_engine, create_sessionmaker
from services.scorer.jobs.maintenance import purge_idempotency_records

HEALTH_CHECK_SECONDS = 10


def health_check_key(settings: Settings) -> str:
    return f"{settings.queue_name}:health-check"


def worker_options(settings: Settings) -> dict[str, Any]:
    async def startup(ctx: dict[str, Any]) -> None:
        engine = create_engine(settings)
        ctx["settings"] = settings
        ctx["engine"] = engine
        ctx["sessionmaker"] = create_sessionmaker(engine)

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx["engine"].dispose()

    return {
        "functions": [purge_idempotency_records],
        "cron_jobs": [cron(purge_idempotency_records, minute={7}, run_at_startup=False)],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.require_redis_url()),
        "queue_name": settings.queue_name,
        "health_check_key": health_check_key(settings),
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "handle_signals": True,
    }


def create_worker(settings: Settings) -> Worker:
    return Worker(**worker_options(settings))

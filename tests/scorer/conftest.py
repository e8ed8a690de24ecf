"""Worker fixtures: an arq pool on the run's queue, a relay call, a burst worker."""

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from fastapi import FastAPI

from services.core.config import Settings
from services.scorer.relay import relay_batch


async def _forget_jobs(redis: ArqRedis, queue_name: str) -> None:
    """Outbox ids restart with every test, so the jobs named after them must go too."""
    keys = [k async for k in redis.scan_iter(f"arq:*:{queue_name}:*")]
    await redis.delete(queue_name, *keys)


@pytest.fixture
async def arq_redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(
        RedisSettings.from_dsn(settings.require_redis_url()), default_queue_name=settings.queue_name
    )
    await _forget_jobs(pool, settings.queue_name)
    yield pool
    await _forget_jobs(pool, settings.queue_name)
    await pool.aclose()


@pytest.fixture
def relay(app: FastAPI, arq_redis: ArqRedis, settings: Settings) -> Callable[..., Awaitable[int]]:
    async def run(batch_size: int = 500, redis: ArqRedis | None = None) -> int:
        pool = arq_redis if redis is None else redis
        relayed, _ = await relay_batch(
            app.state.sessionmaker, pool, settings.queue_name, batch_size
        )
        return relayed

    return run

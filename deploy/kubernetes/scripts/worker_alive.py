"""Exec probe of the scorer pods: exit 0 when a worker on this queue refreshed arq's health-check
key (`<RETENTION_QUEUE_NAME>:health-check`, what `/readyz` shows as `worker`) within its
lifetime of 11 s, 1 when the key is missing or Redis cannot be read.

Every worker on a queue writes the same key, so this tells that some worker of the deployment is
alive, not that this pod's is: see docs/operations.md ("Watching").
"""

import asyncio
import sys

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.core.config import Settings


async def report(url: str, key: str) -> bytes | None:
    redis = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        value: bytes | None = await redis.get(key)
        return value
    finally:
        await redis.aclose()


def main() -> int:
    settings = Settings()
    try:
        value = asyncio.run(report(settings.require_redis_url(), settings.worker_health_key))
    except (OSError, RedisError) as exc:
        sys.stderr.write(f"Redis unreachable: {type(exc).__name__}: {exc}\n")
        return 1
    if value is None:
        sys.stderr.write(f"no worker reported under {settings.worker_health_key}\n")
        return 1
    sys.stdout.write(value.decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Drain a table of pending work whenever a commit NOTIFYs, and on a poll as a fallback: the loop
the outbox relay and the webhook dispatcher share."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


async def _listen(dsn: str, channel: str, wake: asyncio.Event) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.add_listener(channel, lambda *_: wake.set())
    except BaseException:
        # Cancelled (a worker shutting down just after it started) or failed: the caller never
        # gets this connection, so it would stay open, LISTENing, until garbage collection.
        conn.terminate()
        raise
    return conn


async def _close(conn: asyncpg.Connection | None) -> None:
    if conn is not None and not conn.is_closed():
        try:
            await asyncio.wait_for(conn.close(), 5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            conn.terminate()


async def drain_on_notify(
    dsn: str,
    channel: str,
    drain: Callable[[], Awaitable[object]],
    *,
    poll_seconds: float,
    what: str,
) -> None:
    """Run `drain` after LISTEN on `channel`, whenever it is notified, and every `poll_seconds`
    in case a wake-up was missed (listener reconnecting). Errors are logged and retried with
    backoff; only cancellation ends it."""
    wake = asyncio.Event()
    listener: asyncpg.Connection | None = None
    failures = 0
    try:
        while True:
            try:
                if listener is None or listener.is_closed():
                    await _close(listener)
                    listener = None
                    listener = await _listen(dsn, channel, wake)
                # cleared before draining: a commit landing meanwhile triggers one more pass
                wake.clear()
                await drain()
                failures = 0
            except Exception:
                failures += 1
                delay = min(poll_seconds * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
                log.exception("%s failed (%d in a row); retrying in %.1fs", what, failures, delay)
                await asyncio.sleep(delay)
                continue
            try:
                await asyncio.wait_for(wake.wait(), poll_seconds)
            except TimeoutError:
                pass
    finally:
        await _close(listener)

"""Per-API-key rate limits in Redis: one script call per request, failing open.

The limit is a GCRA (generic cell rate algorithm), the sliding-window algorithm that keeps one
number per key: the "theoretical arrival time" `tat` up to which the key's quota is spent. A
key allowed N requests a minute may send N at once, then one every 60/N seconds; a quota never
resets all at once at a window boundary, so no boundary lets 2N through. Redis's own clock
decides, so every API process agrees.

When Redis cannot answer the request is allowed (and a warning logged): the API keeps taking
writes with Redis down, as the outbox guarantees. After a failure Redis is left alone for a few
seconds, so an unreachable Redis costs one timeout per pause, not one per request."""

import asyncio
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.errors import DomainError

log = logging.getLogger(__name__)

PERIOD_MS = 60_000
STATE_KEY = "rate_limit"
"""Where the decision waits in the request's ASGI state for RateLimitHeaders."""

# KEYS[1]: the key's tat; ARGV: limit per period, period in ms.
# Returns {allowed, remaining, retry_after_ms, reset_ms}.
_GCRA = """
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - period
if allowed_at > now then
  return {0, 0, math.ceil(allowed_at - now), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now))
return {1, math.floor((now - allowed_at) / interval + 1e-9), 0, math.ceil(new_tat - now)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_ms: int
    reset_ms: int

    def headers(self) -> dict[str, str]:
        """The IETF draft's fields (draft-ietf-httpapi-ratelimit-headers), plus Retry-After
        when refused."""
        values = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_ms / 1000)),
        }
        if not self.allowed:
            values["Retry-After"] = str(max(1, math.ceil(self.retry_after_ms / 1000)))
        return values


class TooManyRequests(DomainError):
    status = 429
    title = "Too many requests"


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str, timeout: float = 0.5, pause: float = 5.0) -> None:
        self._script = redis.register_script(_GCRA)
        self._prefix = f"{prefix}:rate-limit:"
        self._timeout = timeout
        self._pause = pause
        self._down_until = 0.0

    async def hit(self, key_id: uuid.UUID, limit: int) -> Decision | None:
        """Count one request of this key against `limit` a minute. None: Redis could not
        answer, so nothing was counted and the request may go on."""
        if time.monotonic() < self._down_until:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                raw: list[int] = await self._script(
                    keys=[f"{self._prefix}{key_id}"], args=[limit, PERIOD_MS]
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = time.monotonic() + self._pause
            log.warning(
                "rate limits are not enforced for %.0f s: Redis did not answer (%s: %s)",
                self._pause,
                type(exc).__name__,
                exc,
            )
            return None
        allowed, remaining, retry_after_ms, reset_ms = (int(v) for v in raw)
        return Decision(bool(allowed), limit, remaining, retry_after_ms, reset_ms)


def record(scope_state: dict[str, Any], decision: Decision) -> None:
    scope_state[STATE_KEY] = decision


def refuse(decision: Decision) -> TooManyRequests:
    seconds = max(1, math.ceil(decision.retry_after_ms / 1000))
    return TooManyRequests(
        f"This API key may make {decision.limit} requests a minute; retry in {seconds} s.",
        extra={"limit": decision.limit, "retry_after": seconds},
    )


class RateLimitHeaders:
    """Adds the rate-limit headers of the request's decision to whatever answer goes out:
    successes, errors and the 429 itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = state.get(STATE_KEY)
                if isinstance(decision, Decision):
                    headers = MutableHeaders(scope=message)
                    for name, value in decision.headers().items():
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)

"""Bearer API keys with scopes, verified against the database and cached for a second, then
counted against the key's rate limit (services/api/ratelimit.py)."""

import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Interval, bindparam, func, or_, select, update

from services.api import ratelimit
from services.api.rows import RowReader, compile_sql
from services.core.api_keys import expand_scopes, hash_key
from services.core.audit import Actor
from services.core.config import Settings
from services.core.errors import Forbidden, Unauthorized
from services.core.logs import current_request_id
from services.core.models import ApiKey
from services.core.models.enums import Scope

log = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rk_…`")

TOUCH_EVERY = timedelta(minutes=1)
"""`last_used_at` is written at most this often per key."""


@dataclass(frozen=True)
class Principal:
    key_id: uuid.UUID
    name: str
    scopes: frozenset[Scope]
    expires_at: datetime | None = None
    revoked: bool = False
    rate_limit_per_minute: int | None = None


class KeyCache:
    """Verified keys by hash; an entry lives `ttl` seconds, so revocation spreads within it.
    Also remembers when this process last wrote each key's `last_used_at`."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._touched: dict[uuid.UUID, float] = {}

    def get(self, digest: str) -> tuple[bool, Principal | None]:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, digest: str, principal: Principal | None) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[digest] = (time.monotonic() + self.ttl, principal)

    def due_for_touch(self, key_id: uuid.UUID) -> bool:
        """True at most once per TOUCH_EVERY for a key, in this process."""
        now = time.monotonic()
        last = self._touched.get(key_id)
        if last is not None and now - last < TOUCH_EVERY.total_seconds():
            return False
        if len(self._touched) > 10_000:
            self._touched.clear()
        self._touched[key_id] = now
        return True

    def clear(self) -> None:
        self._entries.clear()
        self._touched.clear()


_KEY_SQL = compile_sql(
    select(
        ApiKey.id,
        ApiKey.name,
        ApiKey.scopes,
        ApiKey.expires_at,
        ApiKey.revoked_at,
        ApiKey.rate_limit_per_minute,
    ).where(ApiKey.key_hash == bindparam("digest"))
)

# Guarded by the row's own value, so processes that each decide to touch a key write it once.
_TOUCH_SQL = compile_sql(
    update(ApiKey)
    .where(
        ApiKey.id == bindparam("key_id"),
        or_(
            ApiKey.last_used_at.is_(None),
            ApiKey.last_used_at < func.now() - bindparam("every", type_=Interval()),
        ),
    )
    .values(last_used_at=func.now())
)


async def _lookup(rows: RowReader, digest: str) -> Principal | None:
    row = await rows.fetchrow(_KEY_SQL, digest)
    if row is None:
        return None
    return Principal(
        row["id"],
        row["name"],
        expand_scopes({Scope(s) for s in row["scopes"]}),
        row["expires_at"],
        row["revoked_at"] is not None,
        row["rate_limit_per_minute"],
    )


async def _touch(request: Request, principal: Principal) -> None:
    """Record the key's use, at most once a minute; a failure here never fails the request."""
    cache: KeyCache = request.app.state.key_cache
    if not cache.due_for_touch(principal.key_id):
        return
    rows: RowReader = request.app.state.rows
    try:
        async with rows.pool.acquire() as conn:
            await conn.execute(_TOUCH_SQL, principal.key_id, TOUCH_EVERY)
    except (asyncpg.PostgresError, OSError) as exc:
        log.warning("could not record the use of API key %s: %s", principal.key_id, exc)


async def _limit(request: Request, principal: Principal) -> None:
    settings: Settings = request.app.state.settings
    limit = principal.rate_limit_per_minute
    if limit is None:
        limit = settings.rate_limit_per_minute
    if limit == 0:
        return
    limiter: ratelimit.RateLimiter = request.app.state.rate_limiter
    decision = await limiter.hit(principal.key_id, limit)
    if decision is None:
        return
    ratelimit.record(request.scope.setdefault("state", {}), decision)
    if not decision.allowed:
        raise ratelimit.refuse(decision)


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """The request's key, checked and counted against its rate limit once per request: a
    request that services/api/hotreads.py passes on to the routes is not counted twice."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Send an API key as `Authorization: Bearer <key>`.")
    digest = hash_key(credentials.credentials)
    cache: KeyCache = request.app.state.key_cache
    hit, principal = cache.get(digest)
    if not hit:
        principal = await _lookup(request.app.state.rows, digest)
        cache.put(digest, principal)
    if principal is None:
        raise Unauthorized("The API key is unknown.")
    if principal.revoked:
        raise Unauthorized("The API key was revoked.")
    if principal.expires_at is not None and principal.expires_at <= datetime.now(UTC):
        raise Unauthorized(
            f"The API key expired at {principal.expires_at.isoformat()}; ask for a new one."
        )
    request.state.api_key_name = principal.name  # for the access log line
    await _touch(request, principal)
    await _limit(request, principal)
    request.state.principal = principal
    return principal


AUDIT_REQUEST_ID_LENGTH = 100
"""The length of `audit_events.request_id`: a longer request id (up to 200 characters) is
recorded by its start."""


def _audited(request_id: str | None) -> str | None:
    return None if request_id is None else request_id[:AUDIT_REQUEST_ID_LENGTH]


def require(scope: Scope) -> Callable[..., Coroutine[Any, Any, Actor]]:
    # One dependency level instead of two: FastAPI's solving of each level costs about as much
    # as the key check itself, and every request pays it.
    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Actor:
        principal = await authenticate(request, credentials)
        if scope not in principal.scopes:
            raise Forbidden(f"This API key lacks the `{scope.value}` scope.")
        return Actor(principal.key_id, principal.name, _audited(current_request_id()))

    return dependency


Reader = Annotated[Actor, Depends(require(Scope.read))]
Writer = Annotated[Actor, Depends(require(Scope.write))]
Admin = Annotated[Actor, Depends(require(Scope.admin))]

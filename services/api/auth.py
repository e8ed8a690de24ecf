"""Bearer API keys with scopes, verified against the database and cached for a second."""

import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, select

from services.api.rows import RowReader, compile_sql
from services.core.api_keys import expand_scopes, hash_key
from services.core.audit import Actor
from services.core.errors import Forbidden, Unauthorized
from services.core.models import ApiKey
from services.core.models.enums import Scope

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rk_…`")


@dataclass(frozen=True)
class Principal:
    key_id: uuid.UUID
    name: str
    scopes: frozenset[Scope]


class KeyCache:
    """Verified keys by hash; an entry lives `ttl` seconds, so revocation spreads within it."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def get(self, digest: str) -> tuple[bool, Principal | None]:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, digest: str, principal: Principal | None) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[digest] = (time.monotonic() + self.ttl, principal)

    def clear(self) -> None:
        self._entries.clear()


_KEY_SQL = compile_sql(
    select(ApiKey.id, ApiKey.name, ApiKey.scopes).where(
        ApiKey.key_hash == bindparam("digest"), ApiKey.revoked_at.is_(None)
    )
)


async def _lookup(rows: RowReader, digest: str) -> Principal | None:
    row = await rows.fetchrow(_KEY_SQL, digest)
    if row is None:
        return None
    return Principal(row["id"], row["name"], expand_scopes({Scope(s) for s in row["scopes"]}))


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Send an API key as `Authorization: Bearer <key>`.")
    digest = hash_key(credentials.credentials)
    cache: KeyCache = request.app.state.key_cache
    hit, principal = cache.get(digest)
    if not hit:
        principal = await _lookup(request.app.state.rows, digest)
        cache.put(digest, principal)
    if principal is None:
        raise Unauthorized("The API key is unknown or revoked.")
    return principal


def require(scope: Scope) -> Callable[..., Coroutine[Any, Any, Actor]]:
    async def dependency(
        request: Request, principal: Annotated[Principal, Depends(authenticate)]
    ) -> Actor:
        if scope not in principal.scopes:
            raise Forbidden(f"This API key lacks the `{scope.value}` scope.")
        return Actor(principal.key_id, principal.name, request.headers.get("x-request-id"))

    return dependency


Reader = Annotated[Actor, Depends(require(Scope.read))]
Writer = Annotated[Actor, Depends(require(Scope.write))]
Admin = Annotated[Actor, Depends(require(Scope.admin))]

"""API keys: made here, shown once, stored as SHA-256 only."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.models import ApiKey
from services.core.models.enums import Scope

KEY_PREFIX = "rk_"


@dataclass(frozen=True)
class NewKey:
    record: ApiKey
    key: str


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is as safe as a slow one and keeps auth cheap.
    return hashlib.sha256(key.encode()).hexdigest()


def expand_scopes(scopes: set[Scope] | frozenset[Scope]) -> frozenset[Scope]:
    """admin includes write, write includes read."""
    granted = set(scopes)
    if Scope.admin in granted:
        granted.add(Scope.write)
    if Scope.write in granted:
        granted.add(Scope.read)
    return frozenset(granted)


async def create_api_key(
    session: AsyncSession,
    name: str,
    scopes: set[Scope],
    expires_at: datetime | None = None,
    rate_limit_per_minute: int | None = None,
) -> NewKey:
    """`expires_at` unset: never expires; `rate_limit_per_minute` unset: the deployment's
    default, 0: no limit."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        name=name,
        prefix=key[:10],
        key_hash=hash_key(key),
        scopes=sorted(s.value for s in scopes),
        expires_at=expires_at,
        rate_limit_per_minute=rate_limit_per_minute,
    )
    session.add(record)
    await session.flush()
    await session.refresh(record)
    return NewKey(record=record, key=key)


async def find_active_key(session: AsyncSession, key: str) -> ApiKey | None:
    return await session.scalar(
        select(ApiKey).where(
            ApiKey.key_hash == hash_key(key),
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > func.now()),
        )
    )


async def revoke_api_key(session: AsyncSession, record: ApiKey) -> None:
    if record.revoked_at is None:
        record.revoked_at = datetime.now(UTC)
        await session.flush()

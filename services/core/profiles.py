"""The scoring profile in use: the highest stored version, or the default before any PUT."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.models import ScoringProfile as ProfileRow
from services.core.scoring.profile import DEFAULT_PROFILE, ScoringProfile


async def active_profile(session: AsyncSession) -> ScoringProfile:
    body = await session.scalar(
        select(ProfileRow.body).order_by(ProfileRow.version.desc()).limit(1)
    )
    return DEFAULT_PROFILE if body is None else ScoringProfile.model_validate(body)


async def save_profile(
    session: AsyncSession, profile: ScoringProfile, author: str
) -> ScoringProfile:
    """Store `profile` as the next version. Versions only grow, so each score names the exact
    profile that produced it. Concurrent saves serialise on an advisory lock."""
    await session.execute(select(func.pg_advisory_xact_lock(7_311_001)))
    latest = await session.scalar(select(func.max(ProfileRow.version)))
    version = max(latest or 0, DEFAULT_PROFILE.version) + 1
    stored = profile.model_copy(update={"version": version})
    session.add(ProfileRow(version=version, body=stored.model_dump(mode="json"), created_by=author))
    await session.flush()
    return stored

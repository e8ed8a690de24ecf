import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.deps import check_if_match
from services.api.jobs.schemas import JobRead
from services.api.scoring.schemas import RecomputeRequest
from services.core import audit
from services.core.errors import FieldError, InvalidInput
from services.core.events import JOBS_REQUESTED, emit
from services.core.models import Customer, Job
from services.core.profiles import active_profile, save_profile
from services.core.scoring.profile import ScoringProfile

RECOMPUTE = "recompute"


async def queue_job(
    session: AsyncSession, actor: audit.Actor, kind: str, params: dict[str, Any]
) -> Job:
    """A queued job row and the event that starts it, in the caller's transaction."""
    job = Job(kind=kind, status="queued", params=params, created_by=actor.name)
    session.add(job)
    await session.flush()
    await session.refresh(job)
    await emit(session, JOBS_REQUESTED, [job.id], [], kind=kind)
    after = JobRead.model_validate(job).model_dump(mode="json")
    await audit.record(session, actor, "create", "job", job.id, None, after)
    return job


async def replace_profile(
    session: AsyncSession, actor: audit.Actor, profile: ScoringProfile, if_match: str | None
) -> tuple[ScoringProfile, Job | None]:
    """Store `profile` as the next version and queue a rescoring of every customer with it.
    The `version` sent is ignored. Sending the active profile again stores nothing."""
    active = await active_profile(session)
    if profile.model_copy(update={"version": active.version}) == active:
        check_if_match(if_match, active.version)
        return active, None
    stored = await save_profile(session, profile, actor.name)
    # save_profile numbers versions under its lock: the one before is the one replaced.
    check_if_match(if_match, stored.version - 1)
    before = active.model_dump(mode="json")
    after = stored.model_dump(mode="json")
    await audit.record(session, actor, "update", "scoring_profile", stored.version, before, after)
    params = {
        "as_of": datetime.now(UTC).isoformat(),
        "customer_ids": None,
        "reason": "profile_changed",
    }
    return stored, await queue_job(session, actor, RECOMPUTE, params)


async def request_recompute(
    session: AsyncSession, actor: audit.Actor, body: RecomputeRequest
) -> Job:
    ids = body.customer_ids
    if ids is not None:
        await _require_customers(session, ids)
    as_of = (body.as_of or datetime.now(UTC)).astimezone(UTC)
    params = {
        "as_of": as_of.isoformat(),
        "customer_ids": None if ids is None else [str(i) for i in ids],
    }
    return await queue_job(session, actor, RECOMPUTE, params)


async def _require_customers(session: AsyncSession, ids: list[uuid.UUID]) -> None:
    """Every id names a customer; one query with the ids as a single array parameter."""
    wanted = sa.bindparam("ids", ids, type_=ARRAY(UUID(as_uuid=True)))
    found = set(
        (await session.scalars(select(Customer.id).where(Customer.id == sa.any_(wanted)))).all()
    )
    missing = [str(i) for i in ids if i not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise InvalidInput(
            f"No customer has these ids: {shown}.",
            [FieldError("body.customer_ids", f"{len(missing)} unknown ids", "unknown_customer")],
            extra={"unknown_customer_ids": missing[:100]},
        )

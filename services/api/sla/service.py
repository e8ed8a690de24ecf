import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.api import references
from services.api.deps import check_if_match
from services.api.pagination import fetch_page
from services.api.reports.filters import check_years
from services.api.sla.schemas import (
    Granularity,
    GroupBy,
    SlaComplianceReport,
    SlaComplianceRow,
    SlaPolicyCreate,
    SlaPolicyRead,
    SlaPolicyUpdate,
)
from services.core import audit
from services.core.db import load
from services.core.errors import Conflict, FieldError, InvalidInput
from services.core.models import SlaPolicy
from services.core.models.enums import TicketPriority
from services.core.sla.calendar import BusinessHours, CalendarError

RESOURCE = "sla_policy"
SORTS = ("created_at",)
REPORT_WINDOW = timedelta(weeks=12)
"""The report's span when `since` is left out."""
MAX_REPORT_SPAN = timedelta(days=3 * 366)
_INDEX = re.compile(r"\[(\d+)\]")


def snapshot(policy: SlaPolicy) -> dict[str, Any]:
    return SlaPolicyRead.model_validate(policy).model_dump(mode="json")


async def get(
    session: AsyncSession, policy_id: uuid.UUID, *, for_update: bool = False
) -> SlaPolicy:
    return await load(session, SlaPolicy, policy_id, for_update=for_update)


async def list_(
    session: AsyncSession,
    channel_id: uuid.UUID | None,
    include_archived: bool,
    cursor: str | None,
    limit: int,
) -> tuple[list[SlaPolicy], str | None]:
    query = select(SlaPolicy)
    if not include_archived:
        query = query.where(SlaPolicy.archived_at.is_(None))
    if channel_id is not None:
        query = query.where(SlaPolicy.channel_id == channel_id)
    columns = {"created_at": SlaPolicy.created_at, "id": SlaPolicy.id}
    return await fetch_page(session, query, "created_at", columns, cursor, limit)


def business_hours_spec(value: Mapping[str, Any]) -> dict[str, Any]:
    """The spec as stored: parsed (so a bad one is refused, naming the place inside it) and
    written back in its normal form."""
    try:
        return BusinessHours.parse(value).to_spec()
    except CalendarError as error:
        path, _, message = str(error).partition(": ")
        path = _INDEX.sub(r".\1", path)
        field = "body.business_hours" if path == "business hours" else f"body.business_hours.{path}"
        raise InvalidInput(
            "The business hours cannot be used.", [FieldError(field, message, "business_hours")]
        ) from None


def _check(values: Mapping[str, Any]) -> None:
    """Rules across fields, on the policy as it would be stored."""
    errors = []
    if values["is_default"] and values["channel_id"] is not None:
        errors.append(
            FieldError(
                "body.is_default",
                "a channel's policy cannot be the default; leave out channel_id or is_default",
                "value_error",
            )
        )
    for priority in TicketPriority:
        target = values["targets"][priority.value]
        if target["resolution_minutes"] < target["first_response_minutes"]:
            errors.append(
                FieldError(
                    f"body.targets.{priority.value}.resolution_minutes",
                    "shorter than first_response_minutes",
                    "value_error",
                )
            )
    if errors:
        raise InvalidInput("The policy is inconsistent.", errors)


async def _check_unique(
    session: AsyncSession, values: Mapping[str, Any], policy_id: uuid.UUID | None
) -> None:
    """One active default, one active policy per channel: said plainly here, enforced by
    partial unique indexes against concurrent writes."""
    channel_id = values["channel_id"]
    if channel_id is not None and not await references.existing_channels(session, [channel_id]):
        raise InvalidInput(
            "The channel does not exist.",
            [FieldError("body.channel_id", "no channel has this id", "not_found")],
        )
    for field, condition in (
        ("is_default", SlaPolicy.is_default if values["is_default"] else None),
        ("channel_id", SlaPolicy.channel_id == channel_id if channel_id else None),
    ):
        if condition is None:
            continue
        query = select(SlaPolicy.id).where(condition, SlaPolicy.archived_at.is_(None))
        if policy_id is not None:
            query = query.where(SlaPolicy.id != policy_id)
        other = await session.scalar(query.limit(1))
        if other is not None:
            what = "the default" if field == "is_default" else "this channel's policy"
            raise Conflict(
                f"Policy {other} is already {what}; archive it or change it first.",
                [FieldError(f"body.{field}", f"policy {other} is already {what}", "unique")],
                extra={"conflicting_id": str(other)},
            )


async def create(session: AsyncSession, actor: audit.Actor, data: SlaPolicyCreate) -> SlaPolicy:
    values = data.model_dump(mode="json")
    values["channel_id"] = data.channel_id
    if data.business_hours is not None:
        values["business_hours"] = business_hours_spec(data.business_hours)
    _check(values)
    await _check_unique(session, values, None)
    policy = SlaPolicy(**values)
    session.add(policy)
    await session.flush()
    await session.refresh(policy)
    await audit.record(session, actor, "create", RESOURCE, policy.id, None, snapshot(policy))
    return policy


async def update(
    session: AsyncSession,
    actor: audit.Actor,
    policy_id: uuid.UUID,
    data: SlaPolicyUpdate,
    if_match: str | None,
) -> SlaPolicy:
    policy = await get(session, policy_id, for_update=True)
    check_if_match(if_match, policy.version)
    if policy.archived_at is not None:
        raise Conflict("The policy is archived and cannot change; create a new one.")
    before = snapshot(policy)
    changes = data.model_dump(mode="json", exclude_unset=True)
    if "channel_id" in changes:
        changes["channel_id"] = data.channel_id
    if "targets" in changes:
        changes["targets"] = {
            **policy.targets,
            **{p: t for p, t in changes["targets"].items() if t is not None},
        }
    if changes.get("business_hours") is not None:
        changes["business_hours"] = business_hours_spec(changes["business_hours"])
    values = {
        name: changes.get(name, getattr(policy, name))
        for name in ("channel_id", "is_default", "targets")
    }
    _check(values)
    await _check_unique(session, values, policy.id)
    for name, value in changes.items():
        setattr(policy, name, value)
    policy.version += 1
    policy.updated_at = func.now()
    await session.flush()
    await session.refresh(policy)
    await audit.record(session, actor, "update", RESOURCE, policy.id, before, snapshot(policy))
    return policy


async def archive(session: AsyncSession, actor: audit.Actor, policy_id: uuid.UUID) -> None:
    """Tickets keep the policy and the due times it gave them; new tickets of its channel
    fall back to the default policy (or none, when the default is archived)."""
    policy = await get(session, policy_id, for_update=True)
    if policy.archived_at is not None:
        return
    before = snapshot(policy)
    policy.archived_at = datetime.now(UTC)
    policy.version += 1
    policy.updated_at = func.now()
    await session.flush()
    await session.refresh(policy)
    await audit.record(session, actor, "archive", RESOURCE, policy.id, before, snapshot(policy))


GROUPS: Mapping[str, str] = {
    "priority": "t.priority",
    "assignee": "t.assignee",
    "channel": "CAST(t.channel_id AS text)",
}

_COMPLIANCE = """
SELECT period_start, grp AS "group", count(*) AS tickets,
  count(*) FILTER (WHERE NOT first_response_breached
    AND coalesce(first_responded_at, resolved_at) IS NOT NULL) AS first_response_met,
  count(*) FILTER (WHERE first_response_breached) AS first_response_breached,
  count(*) FILTER (WHERE NOT resolution_breached AND resolved_at IS NOT NULL) AS resolution_met,
  count(*) FILTER (WHERE resolution_breached) AS resolution_breached,
  count(*) FILTER (WHERE first_response_breached OR resolution_breached) AS breaches
FROM (
  SELECT date_trunc(:unit, t.created_at, :zone) AS period_start, {group} AS grp,
    t.first_responded_at, t.resolved_at, t.first_response_breached, t.resolution_breached
  FROM tickets t
  WHERE t.created_at >= :since AND t.created_at < :until AND t.first_response_due_at IS NOT NULL
) s
GROUP BY period_start, grp
ORDER BY period_start, grp NULLS LAST
"""
"""A first response is met when it (or, lacking one, the resolution) came without a breach;
tickets still within a target are in `tickets` but neither met nor breached for it."""


def _percent(met: int, breached: int) -> float | None:
    decided = met + breached
    return None if decided == 0 else round(100 * met / decided, 1)


def report_window(
    since: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    check_years(since=since, until=until)
    end = until or now
    start = since or end - REPORT_WINDOW
    if start >= end:
        raise InvalidInput(
            "The report's window is empty.",
            [FieldError("query.until", "not after since", "value_error")],
        )
    if end - start > MAX_REPORT_SPAN:
        raise InvalidInput(
            "The report spans too long.",
            [FieldError("query.since", "more than three years before until", "value_error")],
        )
    return start, end


async def compliance(
    session: AsyncSession,
    window: tuple[datetime, datetime],
    granularity: Granularity,
    group_by: GroupBy,
    zone: str,
) -> SlaComplianceReport:
    """One grouped query over the tickets opened in the window."""
    since, until = window
    query = text(_COMPLIANCE.format(group=GROUPS[group_by]))
    params = {"unit": granularity, "zone": zone, "since": since, "until": until}
    rows = (await session.execute(query, params)).mappings().all()
    return SlaComplianceReport(
        since=since,
        until=until,
        granularity=granularity,
        group_by=group_by,
        timezone=zone,
        rows=[
            SlaComplianceRow(
                **row,
                first_response_compliance=_percent(
                    row["first_response_met"], row["first_response_breached"]
                ),
                resolution_compliance=_percent(row["resolution_met"], row["resolution_breached"]),
            )
            for row in rows
        ],
    )

import uuid
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from services.api.auth import Admin, Reader
from services.api.deps import IfMatch, ReadSession, Rows, Session, etag, read_one
from services.api.idempotency import Created, IdempotencyKey, idempotent_create
from services.api.pagination import Cursor, Limit, Page
from services.api.problems import V1_RESPONSES, responses
from services.api.sla import service
from services.api.sla.schemas import (
    Granularity,
    GroupBy,
    SlaComplianceReport,
    SlaPolicyCreate,
    SlaPolicyRead,
    SlaPolicyUpdate,
)
from services.core.errors import FieldError, InvalidInput
from services.core.models import SlaPolicy

sla_policies_router = APIRouter(prefix="/sla-policies", tags=["sla"], responses=V1_RESPONSES)
reports_router = APIRouter(prefix="/reports", tags=["reports"], responses=V1_RESPONSES)

WRITE_ERRORS = (
    "422 names each problem: `body.business_hours.<path>` inside the business hours (e.g. "
    "`body.business_hours.weekly.mon.0`), `body.targets.<priority>.resolution_minutes` when "
    "shorter than the first-response target, `body.is_default` together with a channel, "
    "`body.channel_id` when no such channel exists. 409 names `body.is_default` or "
    "`body.channel_id` when another active policy is already the default or the channel's."
)


@sla_policies_router.get(
    "",
    response_model=Page[SlaPolicyRead],
    summary="List SLA policies",
    description="Oldest first. Archived policies are left out unless `include_archived=true`.",
)
async def list_sla_policies(
    session: Session,
    _: Reader,
    limit: Limit = 50,
    cursor: Cursor = None,
    channel_id: uuid.UUID | None = None,
    include_archived: bool = False,
) -> Page[SlaPolicyRead]:
    rows, next_cursor = await service.list_(session, channel_id, include_archived, cursor, limit)
    return Page(items=[SlaPolicyRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@sla_policies_router.post(
    "",
    response_model=SlaPolicyRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create an SLA policy",
    description="Tickets opened from now on take it: those of its channel, or, for the "
    f"default, those of every channel without a policy of its own. {WRITE_ERRORS}",
    responses=responses(409),
)
async def create_sla_policy(
    request: Request,
    body: SlaPolicyCreate,
    session: Session,
    actor: Admin,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def create() -> Created:
        policy = await service.create(session, actor, body)
        headers = {"Location": f"/v1/sla-policies/{policy.id}", "ETag": etag(policy.version)}
        return SlaPolicyRead.model_validate(policy), headers

    return await idempotent_create(request, session, actor, idempotency_key, body, create)


@sla_policies_router.get(
    "/{policy_id}",
    response_model=SlaPolicyRead,
    summary="Get an SLA policy",
    description="Archived policies can still be read by id.",
    responses=responses(404),
)
async def get_sla_policy(policy_id: uuid.UUID, rows: Rows, _: Reader) -> Response:
    return await read_one(rows, SlaPolicy, SlaPolicyRead, policy_id)


@sla_policies_router.patch(
    "/{policy_id}",
    response_model=SlaPolicyRead,
    summary="Update an SLA policy",
    description="`targets` may name only the priorities that change. Tickets keep the due "
    "times they have until their priority changes or a pause ends. Archived policies cannot "
    f"change (409). {WRITE_ERRORS}",
    responses=responses(404, 409, 412),
)
async def update_sla_policy(
    policy_id: uuid.UUID,
    body: SlaPolicyUpdate,
    session: Session,
    actor: Admin,
    response: Response,
    if_match: IfMatch = None,
) -> SlaPolicyRead:
    policy = await service.update(session, actor, policy_id, body, if_match)
    response.headers["ETag"] = etag(policy.version)
    return SlaPolicyRead.model_validate(policy)


@sla_policies_router.delete(
    "/{policy_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Archive an SLA policy",
    description="Tickets keep pointing at their policy, so deleting archives, even while "
    "tickets use it: they keep their due times, and new tickets take the channel's next "
    "policy (the default, if any). The policy leaves lists unless `include_archived=true`.",
    responses=responses(404),
)
async def archive_sla_policy(policy_id: uuid.UUID, session: Session, actor: Admin) -> Response:
    await service.archive(session, actor, policy_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(
            "Unknown timezone.",
            [FieldError("query.timezone", f"{name!r} is not an IANA zone name", "timezone")],
        ) from None
    return name


@reports_router.get(
    "/sla-compliance",
    response_model=SlaComplianceReport,
    summary="SLA compliance by period and group",
    description="Tickets opened in [`since`, `until`) under an SLA policy, per week or month "
    "(periods start at midnight in `timezone`) and per priority, assignee or channel: how "
    "many met or breached each target, and the share that met it. Tickets still within a "
    "target count for neither. Defaults: the 12 weeks up to now; at most three years.",
)
async def sla_compliance(
    session: ReadSession,
    _: Reader,
    since: Annotated[
        AwareDatetime | None, Query(description="Tickets opened at or after this time.")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Tickets opened before this time; default now.")
    ] = None,
    granularity: Annotated[
        Granularity, Query(description="Periods: ISO weeks from Monday, or calendar months.")
    ] = "week",
    group_by: Annotated[
        GroupBy, Query(description="One row per period and priority, assignee or channel.")
    ] = "priority",
    timezone: Annotated[
        str, Query(max_length=64, description="IANA zone the periods start in.")
    ] = "UTC",
) -> SlaComplianceReport:
    window = service.report_window(since, until, datetime.now(UTC))
    return await service.compliance(session, window, granularity, group_by, _zone(timezone))

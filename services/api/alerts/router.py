import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from services.api.alerts import service
from services.api.alerts.schemas import (
    AlertClose,
    AlertDetail,
    AlertNoteCreate,
    AlertNoteRead,
    AlertRead,
    AlertRuleCreate,
    AlertRuleRead,
    AlertRuleUpdate,
    AlertUpdate,
    OwnerReassign,
    OwnerReassigned,
)
from services.api.auth import Admin, Reader, Writer
from services.api.deps import IfMatch, Rows, Session, etag, read_one
from services.api.idempotency import Created, IdempotencyKey, idempotent_create
from services.api.pagination import Cursor, Limit, Page
from services.api.problems import V1_RESPONSES, responses
from services.core.models import AlertRule
from services.core.models.enums import AlertKind, AlertStatus, AlertSubject, Severity

alert_rules_router = APIRouter(prefix="/alert-rules", tags=["alerts"], responses=V1_RESPONSES)
alerts_router = APIRouter(prefix="/alerts", tags=["alerts"], responses=V1_RESPONSES)
owners_router = APIRouter(prefix="/owners", tags=["owners"], responses=V1_RESPONSES)

ALERT_EVENTS = (
    "Publishes `{event}` to subscribed webhook endpoints in the same transaction. Answers the "
    "alert as `GET` shows it; `If-Match` makes it fail with 412 when the alert changed since "
    "it was read."
)


# Rules


@alert_rules_router.get(
    "",
    response_model=Page[AlertRuleRead],
    summary="List alert rules",
    description="Oldest first. Archived (deleted) rules are left out unless "
    "`include_archived=true`.",
)
async def list_alert_rules(
    session: Session,
    _: Reader,
    limit: Limit = 50,
    cursor: Cursor = None,
    subject: AlertSubject | None = None,
    kind: AlertKind | None = None,
    active: bool | None = None,
    include_archived: bool = False,
) -> Page[AlertRuleRead]:
    filters = service.RuleFilters(subject, kind, active, include_archived)
    rows, next_cursor = await service.list_rules(session, filters, cursor, limit)
    return Page(items=[AlertRuleRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@alert_rules_router.post(
    "",
    response_model=AlertRuleRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create an alert rule",
    description="422 names each problem: a parameter under `body.params` (e.g. "
    "`body.params.days`), `body.kind` when the kind does not apply to the subject, "
    "`body.channel_id` when no such channel exists.",
    responses=responses(409),
)
async def create_alert_rule(
    request: Request,
    body: AlertRuleCreate,
    session: Session,
    actor: Writer,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def create() -> Created:
        rule = await service.create_rule(session, actor, body)
        headers = {"Location": f"/v1/alert-rules/{rule.id}", "ETag": etag(rule.version)}
        return AlertRuleRead.model_validate(rule), headers

    return await idempotent_create(request, session, actor, idempotency_key, body, create)


@alert_rules_router.get(
    "/{rule_id}",
    response_model=AlertRuleRead,
    summary="Get an alert rule",
    description="Archived rules can still be read by id.",
    responses=responses(404),
)
async def get_alert_rule(rule_id: uuid.UUID, rows: Rows, _: Reader) -> Response:
    return await read_one(rows, AlertRule, AlertRuleRead, rule_id)


@alert_rules_router.patch(
    "/{rule_id}",
    response_model=AlertRuleRead,
    summary="Update an alert rule",
    description="`kind` and `subject` cannot change (422 naming them). Archived rules cannot "
    "change (409).",
    responses=responses(404, 409, 412),
)
async def update_alert_rule(
    rule_id: uuid.UUID,
    body: AlertRuleUpdate,
    session: Session,
    actor: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> AlertRuleRead:
    rule = await service.update_rule(session, actor, rule_id, body, if_match)
    response.headers["ETag"] = etag(rule.version)
    return AlertRuleRead.model_validate(rule)


@alert_rules_router.delete(
    "/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Archive an alert rule",
    description="Alerts keep pointing at their rule, so deleting archives: the rule turns "
    "inactive, raises nothing more and leaves lists (unless `include_archived=true`). Its "
    "alerts stay as they are.",
    responses=responses(404),
)
async def archive_alert_rule(rule_id: uuid.UUID, session: Session, actor: Writer) -> Response:
    await service.archive_rule(session, actor, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Alerts

StatusQuery = Annotated[
    list[AlertStatus] | None,
    Query(
        description="Only alerts in these statuses; repeat for several (`status=open&status="
        "acknowledged`)."
    ),
]


def alert_filters(
    status: StatusQuery = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    severity: Severity | None = None,
    channel_id: Annotated[
        uuid.UUID | None,
        Query(description="The channel's own alerts and those of its customers."),
    ] = None,
    rule_id: uuid.UUID | None = None,
    subject: AlertSubject | None = None,
    subject_id: Annotated[
        uuid.UUID | None, Query(description="One customer's or channel's alerts.")
    ] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Only alerts opened at or after this time.")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Only alerts opened before this time.")
    ] = None,
) -> service.AlertFilters:
    """`GET /v1/alerts`'s filters."""
    return service.AlertFilters(
        status or (), owner, severity, channel_id, rule_id, subject, subject_id, since, until
    )


@alerts_router.get(
    "",
    response_model=Page[AlertRead],
    summary="List alerts",
    description="Newest `opened_at` first.",
)
async def list_alerts(
    session: Session,
    _: Reader,
    filters: Annotated[service.AlertFilters, Depends(alert_filters)],
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AlertRead]:
    items, next_cursor = await service.list_alerts(session, filters, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


def _with_etag(response: Response, alert: AlertDetail) -> AlertDetail:
    response.headers["ETag"] = etag(alert.version)
    return alert


@alerts_router.get(
    "/{alert_id}",
    response_model=AlertDetail,
    summary="Get an alert",
    description="With its notes, oldest first.",
    responses=responses(404),
)
async def get_alert(
    alert_id: uuid.UUID, session: Session, _: Reader, response: Response
) -> AlertDetail:
    return _with_etag(response, await service.get_alert(session, alert_id))


@alerts_router.patch(
    "/{alert_id}",
    response_model=AlertDetail,
    summary="Update an alert",
    description="Owner and due time of an open or acknowledged alert (409 once closed). "
    + ALERT_EVENTS.format(event="alert.updated"),
    responses=responses(404, 409, 412),
)
async def update_alert(
    alert_id: uuid.UUID,
    body: AlertUpdate,
    session: Session,
    actor: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> AlertDetail:
    alert = await service.update_alert(session, actor, alert_id, body, if_match)
    return _with_etag(response, alert)


@alerts_router.post(
    "/{alert_id}/acknowledge",
    response_model=AlertDetail,
    summary="Acknowledge an alert",
    description="Someone is on it: `open` becomes `acknowledged`, stamping `acknowledged_at` "
    "and `acknowledged_by`; any other status is a 409. "
    + ALERT_EVENTS.format(event="alert.updated"),
    responses=responses(404, 409, 412),
)
async def acknowledge_alert(
    alert_id: uuid.UUID,
    session: Session,
    actor: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> AlertDetail:
    alert = await service.acknowledge(session, actor, alert_id, if_match)
    return _with_etag(response, alert)


@alerts_router.post(
    "/{alert_id}/resolve",
    response_model=AlertDetail,
    summary="Resolve an alert",
    description="The work is done: an `open` or `acknowledged` alert becomes `resolved`, "
    "stamping `closed_at` and `closed_by`; a closed one is a 409. The optional `note` is "
    "kept with the alert. " + ALERT_EVENTS.format(event="alert.resolved"),
    responses=responses(404, 409, 412),
)
async def resolve_alert(
    alert_id: uuid.UUID,
    session: Session,
    actor: Writer,
    response: Response,
    if_match: IfMatch = None,
    body: AlertClose | None = None,
) -> AlertDetail:
    note = body.note if body is not None else None
    alert = await service.resolve(session, actor, alert_id, note, if_match)
    return _with_etag(response, alert)


@alerts_router.post(
    "/{alert_id}/dismiss",
    response_model=AlertDetail,
    summary="Dismiss an alert",
    description="No work is needed: an `open` or `acknowledged` alert becomes `dismissed`, "
    "stamping `closed_at` and `closed_by`; a closed one is a 409. The optional `note` is kept "
    "with the alert. " + ALERT_EVENTS.format(event="alert.updated"),
    responses=responses(404, 409, 412),
)
async def dismiss_alert(
    alert_id: uuid.UUID,
    session: Session,
    actor: Writer,
    response: Response,
    if_match: IfMatch = None,
    body: AlertClose | None = None,
) -> AlertDetail:
    note = body.note if body is not None else None
    alert = await service.dismiss(session, actor, alert_id, note, if_match)
    return _with_etag(response, alert)


@alerts_router.post(
    "/{alert_id}/notes",
    response_model=AlertNoteRead,
    status_code=status.HTTP_201_CREATED,
    summary="Add a note to an alert",
    description="In any status. The alert's version increases, and `alert.updated` is "
    "published to subscribed webhook endpoints in the same transaction.",
    responses=responses(404, 412),
)
async def create_alert_note(
    request: Request,
    alert_id: uuid.UUID,
    body: AlertNoteCreate,
    session: Session,
    actor: Writer,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def create() -> Created:
        note = await service.add_note(session, actor, alert_id, body, if_match)
        return note, {"Location": f"/v1/alerts/{alert_id}"}

    return await idempotent_create(request, session, actor, idempotency_key, body, create)


# Owners


@owners_router.post(
    "/reassign",
    response_model=OwnerReassigned,
    summary="Hand one owner's customers, channels and alerts to another",
    description="For a departing or overloaded account manager: in one transaction, every "
    "customer and channel owned by `from_owner` (versions increase), and every open or "
    "acknowledged alert (each publishes `alert.updated`), moves to `to_owner`, within the "
    "optional filters. One audit event records the handover. Answers how many of each moved.",
)
async def reassign_owner(body: OwnerReassign, session: Session, actor: Admin) -> OwnerReassigned:
    return await service.reassign(session, actor, body)

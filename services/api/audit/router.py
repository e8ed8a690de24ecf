import base64
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from services.api.audit.schemas import AuditEventRead
from services.api.auth import Admin
from services.api.deps import Session
from services.api.pagination import Cursor, Limit, Page
from services.api.problems import V1_RESPONSES
from services.core.errors import FieldError, InvalidInput
from services.core.models import AuditEvent

router = APIRouter(prefix="/audit-events", tags=["audit"], responses=V1_RESPONSES)


def _cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode()


def _after(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except ValueError as exc:
        raise InvalidInput(
            "The cursor is not one this list gave out.",
            [FieldError("query.cursor", "malformed", "cursor")],
        ) from exc


@router.get(
    "",
    response_model=Page[AuditEventRead],
    summary="List audit events, newest first",
)
async def list_audit_events(
    session: Session,
    _: Admin,
    limit: Limit = 50,
    cursor: Cursor = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    actor_id: str | None = None,
    action: str | None = None,
    since: Annotated[
        datetime | None, Query(description="Only events at or after this time.")
    ] = None,
    until: Annotated[datetime | None, Query(description="Only events before this time.")] = None,
) -> Page[AuditEventRead]:
    query = select(AuditEvent)
    for column, value in (
        (AuditEvent.resource_type, resource_type),
        (AuditEvent.resource_id, resource_id),
        (AuditEvent.action, action),
        (AuditEvent.actor_id, actor_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEvent.occurred_at < until)
    if cursor is not None:
        query = query.where(AuditEvent.id < _after(cursor))
    rows = (await session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1))).all()
    next_cursor = _cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(
        items=[AuditEventRead.model_validate(r) for r in rows[:limit]], next_cursor=next_cursor
    )

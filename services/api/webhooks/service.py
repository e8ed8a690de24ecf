import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy import update as update_rows
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.deps import check_if_match
from services.api.pagination import SortColumn, fetch_page, fetch_rows
from services.api.webhooks.schemas import (
    RecoveryRequest,
    WebhookAttemptRead,
    WebhookCreate,
    WebhookDeliveryRead,
    WebhookRead,
    WebhookTestSent,
    WebhookUpdate,
)
from services.core import audit
from services.core.config import Settings
from services.core.crypto import SecretBox
from services.core.db import load
from services.core.errors import Conflict, FieldError, InvalidInput
from services.core.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
    WebhookSequence,
)
from services.core.webhooks.publish import DELIVERIES_CHANNEL, publish
from services.core.webhooks.signing import new_secret
from services.core.webhooks.targets import UnsafeTarget, check_target

RESOURCE = "webhook"
DELIVERY = "webhook_delivery"
TEST_EVENT = "webhook.test"
TEST_MESSAGE = "A test event from retention-service: signed and sent like every other."


def snapshot(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """The endpoint for the audit trail: never its secrets."""
    return WebhookRead.model_validate(endpoint).model_dump(mode="json")


async def check_url(url: str, settings: Settings) -> None:
    """Refuse a URL the sender would refuse (not resolvable, or private where that is not
    allowed), naming the field, before it is stored."""
    try:
        await check_target(url, settings.webhook_allow_private)
    except UnsafeTarget as exc:
        raise InvalidInput(
            "The webhook URL cannot be sent to.",
            [FieldError("body.url", str(exc), "unsafe_target")],
        ) from exc


async def list_(
    session: AsyncSession,
    active: bool | None,
    disabled: bool | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[WebhookEndpoint], str | None]:
    query = select(WebhookEndpoint)
    if active is not None:
        query = query.where(WebhookEndpoint.active.is_(active))
    if disabled is not None:
        query = query.where(
            WebhookEndpoint.disabled_at.is_not(None)
            if disabled
            else WebhookEndpoint.disabled_at.is_(None)
        )
    columns = {"created_at": WebhookEndpoint.created_at, "id": WebhookEndpoint.id}
    return await fetch_page(session, query, "created_at", columns, cursor, limit)


async def create(
    session: AsyncSession,
    actor: audit.Actor,
    data: WebhookCreate,
    settings: Settings,
    box: SecretBox,
) -> tuple[WebhookEndpoint, str]:
    """The endpoint, and its signing secret: stored encrypted, returned once in plaintext."""
    await check_url(data.url, settings)
    secret = new_secret()
    endpoint = WebhookEndpoint(**data.model_dump(), secret=box.encrypt(secret))
    session.add(endpoint)
    await session.flush()
    await session.refresh(endpoint)
    await audit.record(session, actor, "create", RESOURCE, endpoint.id, None, snapshot(endpoint))
    return endpoint, secret


async def update(
    session: AsyncSession,
    actor: audit.Actor,
    endpoint_id: uuid.UUID,
    data: WebhookUpdate,
    if_match: str | None,
    settings: Settings,
) -> WebhookEndpoint:
    """Apply the changes. `active: true` also clears a disablement and the failure clock, and a
    new URL restarts the failure clock: past failures were about another receiver."""
    changes = data.model_dump(exclude_unset=True)
    if "url" in changes:
        await check_url(changes["url"], settings)  # before the lock: it resolves the host
    endpoint = await load(session, WebhookEndpoint, endpoint_id, for_update=True)
    check_if_match(if_match, endpoint.version)
    before = snapshot(endpoint)
    if changes.get("active") and (not endpoint.active or endpoint.disabled_at is not None):
        endpoint.disabled_at = None
        endpoint.disabled_reason = None
        endpoint.failing_since = None
    if changes.get("url", endpoint.url) != endpoint.url:
        endpoint.failing_since = None
    for name, value in changes.items():
        setattr(endpoint, name, value)
    endpoint.version += 1
    endpoint.updated_at = func.now()
    await session.flush()
    await session.refresh(endpoint)
    await audit.record(session, actor, "update", RESOURCE, endpoint.id, before, snapshot(endpoint))
    return endpoint


async def delete_(session: AsyncSession, actor: audit.Actor, endpoint_id: uuid.UUID) -> None:
    """Delete the endpoint; the database cascades to its deliveries and their attempts."""
    endpoint = await load(session, WebhookEndpoint, endpoint_id, for_update=True)
    before = snapshot(endpoint)
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
    await audit.record(session, actor, "delete", RESOURCE, endpoint_id, before, None)


async def rotate_secret(
    session: AsyncSession,
    actor: audit.Actor,
    endpoint_id: uuid.UUID,
    overlap_hours: float,
    box: SecretBox,
) -> tuple[WebhookEndpoint, str]:
    """A new secret, returned in plaintext and stored encrypted; the current one keeps signing
    for `overlap_hours` (not at all for 0). Only two secrets sign at once, so a secret rotated
    out earlier stops now."""
    endpoint = await load(session, WebhookEndpoint, endpoint_id, for_update=True)
    before = snapshot(endpoint)
    if overlap_hours > 0:
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = datetime.now(UTC) + timedelta(hours=overlap_hours)
    else:
        endpoint.previous_secret = None
        endpoint.previous_secret_expires_at = None
    secret = new_secret()
    endpoint.secret = box.encrypt(secret)
    endpoint.version += 1
    endpoint.updated_at = func.now()
    await session.flush()
    await session.refresh(endpoint)
    after = snapshot(endpoint)
    await audit.record(session, actor, "rotate_secret", RESOURCE, endpoint.id, before, after)
    return endpoint, secret


async def send_test(
    session: AsyncSession, actor: audit.Actor, endpoint_id: uuid.UUID
) -> WebhookTestSent:
    """Publish a `webhook.test` event to this endpoint alone.

    `publish` does not return ids, so the message is found through its subject's sequence:
    the subject is the endpoint, and publish's upsert keeps that sequence row locked until
    commit, so its `last` number is the message just written here.
    """
    endpoint = await load(session, WebhookEndpoint, endpoint_id, for_update=True)
    if not endpoint.active or endpoint.disabled_at is not None:
        state = "disabled" if endpoint.disabled_at is not None else "inactive"
        raise Conflict(f"The endpoint is {state}: it receives nothing, tests included.")
    data = {"endpoint_id": str(endpoint.id), "message": TEST_MESSAGE}
    await publish(session, TEST_EVENT, [(endpoint.id, data)], only_endpoint=endpoint.id)
    sent = (
        await session.execute(
            select(WebhookDelivery.message_id, WebhookDelivery.id)
            .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
            .join(
                WebhookSequence,
                (WebhookSequence.subject_id == WebhookMessage.subject_id)
                & (WebhookSequence.last == WebhookMessage.sequence),
            )
            .where(WebhookMessage.subject_id == endpoint.id)
            .where(WebhookDelivery.endpoint_id == endpoint.id)
        )
    ).one()
    result = WebhookTestSent(message_id=sent.message_id, delivery_id=sent.id)
    await audit.record(
        session, actor, "test", RESOURCE, endpoint.id, None, result.model_dump(mode="json")
    )
    return result


async def list_deliveries(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    status: DeliveryStatus | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[WebhookDeliveryRead], str | None]:
    """Newest first: one query for the page with each message's type, one for its attempts."""
    query = (
        select(WebhookDelivery)
        .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .add_columns(WebhookMessage.type.label("event_type"))
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    columns: dict[str, SortColumn] = {
        "created_at": WebhookDelivery.created_at,
        "id": WebhookDelivery.id,
    }
    rows, next_cursor = await fetch_rows(session, query, "-created_at", columns, cursor, limit)
    if not rows:  # rows prove the endpoint exists; an empty page may mean it does not
        await load(session, WebhookEndpoint, endpoint_id)
    items = await _with_attempts(session, [(row[0], row.event_type) for row in rows])
    return items, next_cursor


async def _with_attempts(
    session: AsyncSession, deliveries: Sequence[tuple[WebhookDelivery, str]]
) -> list[WebhookDeliveryRead]:
    ids = [delivery.id for delivery, _ in deliveries]
    by_delivery: dict[uuid.UUID, list[WebhookAttemptRead]] = defaultdict(list)
    if ids:
        attempts = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(ids))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempted_at, WebhookAttempt.id)
        )
        for attempt in attempts:
            by_delivery[attempt.delivery_id].append(WebhookAttemptRead.model_validate(attempt))
    return [
        WebhookDeliveryRead(
            id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            message_id=delivery.message_id,
            event_type=event_type,
            status=delivery.status,
            attempt_count=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            finished_at=delivery.finished_at,
            attempts=by_delivery[delivery.id],
        )
        for delivery, event_type in deliveries
    ]


def _delivery_state(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "next_attempt_at": None
        if delivery.next_attempt_at is None
        else delivery.next_attempt_at.isoformat(),
        "finished_at": None if delivery.finished_at is None else delivery.finished_at.isoformat(),
    }


async def _wake_dispatcher(session: AsyncSession) -> None:
    """The dispatcher LISTENs here; the notification goes out when the transaction commits."""
    await session.execute(select(func.pg_notify(DELIVERIES_CHANNEL, "")))


async def redeliver(
    session: AsyncSession, actor: audit.Actor, delivery_id: uuid.UUID
) -> WebhookDeliveryRead:
    """Back to pending, due now, with a fresh retry schedule; the same message, so the same
    `webhook-id`. It goes out once its endpoint is active and enabled."""
    delivery = await load(session, WebhookDelivery, delivery_id, for_update=True)
    before = _delivery_state(delivery)
    delivery.status = DeliveryStatus.pending
    delivery.attempts = 0
    delivery.next_attempt_at = func.now()
    delivery.finished_at = None
    await session.flush()
    await session.refresh(delivery)
    await _wake_dispatcher(session)
    after = _delivery_state(delivery)
    await audit.record(session, actor, "redeliver", DELIVERY, delivery.id, before, after)
    event_type = await session.scalar(
        select(WebhookMessage.type).where(WebhookMessage.id == delivery.message_id)
    )
    return (await _with_attempts(session, [(delivery, str(event_type))]))[0]


async def recover(
    session: AsyncSession, actor: audit.Actor, endpoint_id: uuid.UUID, window: RecoveryRequest
) -> int:
    """Put the endpoint's failed deliveries created in [since, until) back to pending, due now,
    with a fresh retry schedule. Returns how many."""
    await load(session, WebhookEndpoint, endpoint_id)
    query = (
        update_rows(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .where(WebhookDelivery.status == DeliveryStatus.failed)
        .where(WebhookDelivery.created_at >= window.since)
        .values(
            status=DeliveryStatus.pending,
            attempts=0,
            next_attempt_at=func.now(),
            finished_at=None,
        )
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    )
    if window.until is not None:
        query = query.where(WebhookDelivery.created_at < window.until)
    count = len((await session.scalars(query)).all())
    if count:
        await _wake_dispatcher(session)
    await audit.record(
        session,
        actor,
        "recover",
        RESOURCE,
        endpoint_id,
        None,
        {**window.model_dump(mode="json"), "count": count},
    )
    return count

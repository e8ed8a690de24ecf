import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse

from services.api.auth import Admin
from services.api.deps import IfMatch, Rows, Session, etag, read_one
from services.api.idempotency import Created, IdempotencyKey, idempotent_create
from services.api.pagination import Cursor, Limit, Page
from services.api.problems import V1_RESPONSES, responses
from services.api.webhooks import service
from services.api.webhooks.schemas import (
    EventTypeCatalogue,
    EventTypeRead,
    RecoveryRequest,
    RecoveryResult,
    SecretRotation,
    WebhookCreate,
    WebhookDeliveryRead,
    WebhookRead,
    WebhookTestSent,
    WebhookUpdate,
    WebhookWithSecret,
)
from services.core.config import Settings
from services.core.crypto import SecretBox
from services.core.models import DeliveryStatus, WebhookEndpoint
from services.core.webhooks.catalogue import ANY, CATALOGUE_VERSION, EVENT_TYPES

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=V1_RESPONSES)
deliveries_router = APIRouter(
    prefix="/webhook-deliveries", tags=["webhooks"], responses=V1_RESPONSES
)


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(_settings)]


async def _secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


Box = Annotated[SecretBox, Depends(_secret_box)]


def _with_secret(endpoint: WebhookEndpoint, secret: str) -> WebhookWithSecret:
    return WebhookWithSecret(**WebhookRead.model_validate(endpoint).model_dump(), secret=secret)


def _headers(endpoint: WebhookEndpoint) -> dict[str, str]:
    return {"Location": f"/v1/webhooks/{endpoint.id}", "ETag": etag(endpoint.version)}


@router.get(
    "/event-types",
    response_model=EventTypeCatalogue,
    summary="List the event types",
    description="The versioned catalogue of events an endpoint can subscribe to. Every "
    "delivery is a Standard Webhooks message: `webhook-id`, `webhook-timestamp` and "
    "`webhook-signature` headers, and a JSON body `{type, timestamp, data}`.",
)
async def list_event_types(_: Admin) -> EventTypeCatalogue:
    return EventTypeCatalogue(
        version=CATALOGUE_VERSION,
        any=ANY,
        event_types=[EventTypeRead(type=t, description=d) for t, d in EVENT_TYPES.items()],
    )


@router.get("", response_model=Page[WebhookRead], summary="List webhook endpoints")
async def list_webhooks(
    session: Session,
    _: Admin,
    limit: Limit = 50,
    cursor: Cursor = None,
    active: bool | None = None,
    disabled: bool | None = None,
) -> Page[WebhookRead]:
    rows, next_cursor = await service.list_(session, active, disabled, cursor, limit)
    return Page(items=[WebhookRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=WebhookWithSecret,
    status_code=status.HTTP_201_CREATED,
    summary="Create a webhook endpoint",
    description="The answer holds the signing `secret`; it is shown again only when rotated. "
    "The URL's host must resolve now (and, unless the deployment allows private targets, "
    "only to public addresses); it is checked again before every send.",
)
async def create_webhook(
    request: Request,
    body: WebhookCreate,
    session: Session,
    actor: Admin,
    settings: AppSettings,
    box: Box,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def create() -> Created:
        endpoint, secret = await service.create(session, actor, body, settings, box)
        return _with_secret(endpoint, secret), _headers(endpoint)

    return await idempotent_create(
        request, session, actor, idempotency_key, body, create, sealed=("secret",)
    )


@router.get(
    "/{webhook_id}",
    response_model=WebhookRead,
    summary="Get a webhook endpoint",
    description="Never shows the secret; shows whether the endpoint was disabled and why, and "
    "whether the secret before the last rotation still signs.",
    responses=responses(404),
)
async def get_webhook(webhook_id: uuid.UUID, rows: Rows, _: Admin) -> Response:
    return await read_one(rows, WebhookEndpoint, WebhookRead, webhook_id)


@router.patch(
    "/{webhook_id}",
    response_model=WebhookRead,
    summary="Update a webhook endpoint",
    description="`active: true` enables an endpoint the service disabled: it clears "
    "`disabled_at`, `disabled_reason` and `failing_since`, and its pending deliveries go out. "
    "A new `url` is checked like on create and restarts `failing_since`.",
    responses=responses(404, 412),
)
async def update_webhook(
    webhook_id: uuid.UUID,
    body: WebhookUpdate,
    session: Session,
    actor: Admin,
    settings: AppSettings,
    response: Response,
    if_match: IfMatch = None,
) -> WebhookRead:
    endpoint = await service.update(session, actor, webhook_id, body, if_match, settings)
    response.headers["ETag"] = etag(endpoint.version)
    return WebhookRead.model_validate(endpoint)


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook endpoint",
    description="Deletes it with its deliveries and their attempts; nothing more is sent.",
    responses=responses(404),
)
async def delete_webhook(webhook_id: uuid.UUID, session: Session, actor: Admin) -> Response:
    await service.delete_(session, actor, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=WebhookWithSecret,
    summary="Rotate a webhook endpoint's secret",
    description="Answers with the new `secret`, shown only here. Until `overlap_hours` from "
    "now every delivery carries two signatures, by the new and the old secret, so the "
    "receiver can switch at leisure. The body is optional.",
    responses=responses(404),
)
async def rotate_webhook_secret(
    webhook_id: uuid.UUID,
    session: Session,
    actor: Admin,
    settings: AppSettings,
    box: Box,
    response: Response,
    body: SecretRotation | None = None,
) -> WebhookWithSecret:
    hours = body.overlap_hours if body is not None else None
    if hours is None:
        hours = settings.webhook_secret_overlap_hours
    endpoint, secret = await service.rotate_secret(session, actor, webhook_id, hours, box)
    response.headers["ETag"] = etag(endpoint.version)
    return _with_secret(endpoint, secret)


@router.post(
    "/{webhook_id}/test",
    response_model=WebhookTestSent,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a test event to a webhook endpoint",
    description="Queues a `webhook.test` event for this endpoint only, signed and retried like "
    "any other, whatever event types the endpoint subscribes to. 409 when the endpoint is "
    "inactive or disabled.",
    responses=responses(404, 409),
)
async def send_webhook_test(
    webhook_id: uuid.UUID, session: Session, actor: Admin
) -> WebhookTestSent:
    return await service.send_test(session, actor, webhook_id)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[WebhookDeliveryRead],
    summary="List a webhook endpoint's deliveries",
    description="Newest first, each with every attempt made at it.",
    responses=responses(404),
)
async def list_webhook_deliveries(
    webhook_id: uuid.UUID,
    session: Session,
    _: Admin,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: DeliveryStatus | None = None,
) -> Page[WebhookDeliveryRead]:
    items, next_cursor = await service.list_deliveries(session, webhook_id, status, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/recover",
    response_model=RecoveryResult,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Resend a webhook endpoint's failed deliveries",
    description="Every `failed` delivery of the endpoint created in [`since`, `until`) goes "
    "back to `pending`, due now, with a fresh retry schedule and the same `webhook-id`: for "
    "after the receiver was down longer than the retries last.",
    responses=responses(404),
)
async def recover_webhook(
    webhook_id: uuid.UUID, body: RecoveryRequest, session: Session, actor: Admin
) -> RecoveryResult:
    return RecoveryResult(count=await service.recover(session, actor, webhook_id, body))


@deliveries_router.post(
    "/{delivery_id}/redeliver",
    response_model=WebhookDeliveryRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Redeliver a webhook delivery",
    description="The delivery goes back to `pending`, due now, with a fresh retry schedule "
    "and the same message (the same `webhook-id`), whatever its status. It is sent once its "
    "endpoint is active and enabled.",
    responses=responses(404),
)
async def redeliver_webhook_delivery(
    delivery_id: uuid.UUID, session: Session, actor: Admin
) -> WebhookDeliveryRead:
    return await service.redeliver(session, actor, delivery_id)

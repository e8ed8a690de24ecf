import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from pydantic import (
    AfterValidator,
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from services.api.schemas import InputModel, PatchModel, ReadModel
from services.core.models import DeliveryStatus
from services.core.webhooks.catalogue import ANY, EVENT_TYPES
from services.core.webhooks.targets import ALLOWED_SCHEMES

MAX_OVERLAP_HOURS = 168
SHOWN_UNKNOWN = 5
"""Unknown event types named in an error message, at most."""


def _http_url(value: str) -> str:
    """Parsed by httpx, like the sender parses it, so what is accepted here is what gets sent to."""
    try:
        parsed = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise ValueError(f"scheme must be http or https, not {parsed.scheme or 'missing'!r}")
    if not parsed.raw_host:
        raise ValueError("the URL has no host")
    return value


def _known_event_types(value: list[str]) -> list[str]:
    unknown = [t for t in value if t not in EVENT_TYPES and t != ANY]
    if unknown:
        named = ", ".join(repr(t[:64]) for t in unknown[:SHOWN_UNKNOWN])
        raise ValueError(f"unknown event types: {named}; see GET /v1/webhooks/event-types")
    if len(set(value)) != len(value):
        raise ValueError("event_types has duplicates")
    return value


Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    AfterValidator(_http_url),
]
EventTypes = Annotated[
    list[str], Field(min_length=1, max_length=100), AfterValidator(_known_event_types)
]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]

URL_DOC = (
    "Where deliveries are POSTed: http or https, at most 2000 characters. Unless the "
    "deployment allows private targets, every address its host resolves to must be public "
    "(no loopback, private, link-local or metadata addresses)."
)
EVENT_TYPES_DOC = (
    "The event types to receive, from `GET /v1/webhooks/event-types`, or `*` for all of them "
    "(including types added later). Each at most once."
)
DESCRIPTION_DOC = (
    "A note for people: who runs the receiver, what it is for (up to 1000 characters)."
)

EXAMPLE: dict[str, Any] = {
    "url": "https://crm.example.com/hooks/retention",
    "event_types": ["alert.opened", "customer.health.changed"],
    "description": "CRM: opens a follow-up task for each alert",
    "active": True,
}
READ_EXAMPLE: dict[str, Any] = {
    "id": "0196f5d2-7c1e-7a3b-9d2f-3e4f5a6b7c8d",
    **EXAMPLE,
    "disabled_at": None,
    "disabled_reason": None,
    "failing_since": None,
    "previous_secret_valid": True,
    "previous_secret_expires_at": "2026-03-02T09:00:00Z",
    "created_at": "2026-02-01T09:00:00Z",
    "updated_at": "2026-03-01T09:00:00Z",
    "version": 2,
}
SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw8e9Y6Fw1bHw="


class EventTypeRead(ReadModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"type": "alert.opened", "description": EVENT_TYPES["alert.opened"]}]
        }
    )

    type: str = Field(description="The name to subscribe to and the `type` of the payload.")
    description: str = Field(description="When it is sent and what its `data` holds.")


class EventTypeCatalogue(ReadModel):
    """The event types an endpoint can subscribe to."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": 1,
                    "any": ANY,
                    "event_types": [
                        {"type": "alert.opened", "description": EVENT_TYPES["alert.opened"]}
                    ],
                }
            ]
        }
    )

    version: int = Field(
        description="Catalogue version: it increases when a type is renamed or removed, or a "
        "field of its `data` is removed; adding types or fields keeps it."
    )
    any: str = Field(description="Subscribe to this to receive every type, present and future.")
    event_types: list[EventTypeRead] = Field(description="Every type, by name.")


class WebhookCreate(InputModel):
    """A new endpoint. The answer holds its signing `secret`, shown only then."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    url: Url = Field(description=URL_DOC)
    event_types: EventTypes = Field(description=EVENT_TYPES_DOC)
    description: Description | None = Field(default=None, description=DESCRIPTION_DOC)
    active: bool = Field(default=True, description="Inactive endpoints receive nothing.")


class WebhookUpdate(PatchModel):
    """Fields to change; omitted fields stay, `null` clears the description. `active: true` on
    a disabled endpoint enables it again."""

    NON_NULL = ("url", "event_types", "active")

    model_config = ConfigDict(json_schema_extra={"examples": [{"active": True}]})

    url: Url | None = Field(default=None, description=URL_DOC)
    event_types: EventTypes | None = Field(default=None, description=EVENT_TYPES_DOC)
    description: Description | None = Field(
        default=None, description=f"{DESCRIPTION_DOC} `null` clears it."
    )
    active: bool | None = Field(
        default=None,
        description="`false` pauses deliveries (they wait); `true` resumes them and also "
        "enables an endpoint the service disabled, clearing why.",
    )


class WebhookRead(ReadModel):
    """An endpoint as stored, without its secrets."""

    model_config = ConfigDict(json_schema_extra={"examples": [READ_EXAMPLE]})

    id: uuid.UUID = Field(description="The endpoint's id.")
    url: str = Field(description="Where deliveries are POSTed.")
    event_types: list[str] = Field(description="The event types it receives; `*` is all.")
    description: str | None = Field(description="A note for people.")
    active: bool = Field(description="Whether it receives deliveries, unless disabled.")
    disabled_at: datetime | None = Field(
        description="When the service disabled it (it failed every delivery for too long, or "
        "answered 410 Gone); null while enabled. Disabled endpoints receive nothing until "
        "PATCHed with `active: true`."
    )
    disabled_reason: str | None = Field(description="Why it was disabled.")
    failing_since: datetime | None = Field(
        description="Since when every delivery has failed; null after a success."
    )
    previous_secret_valid: bool = Field(
        description="Whether the secret before the last rotation still signs deliveries, "
        "next to the current one."
    )
    previous_secret_expires_at: datetime | None = Field(
        description="When the previous secret stops (or stopped) signing; null when the last "
        "rotation had no overlap, or there was none."
    )
    created_at: datetime = Field(description="When it was created.")
    updated_at: datetime = Field(description="When it last changed.")
    version: int = Field(description="Increases on every change; the ETag is its quoted form.")

    @model_validator(mode="before")
    @classmethod
    def _previous_secret(cls, data: Any) -> Any:
        """Stored rows hold the previous secret itself; only whether it still signs is shown.
        Accepts a row mapping or an ORM object."""
        if isinstance(data, Mapping):
            values = dict(data)
        else:
            names = (*cls.model_fields, "previous_secret")
            values = {name: getattr(data, name) for name in names if hasattr(data, name)}
        if "previous_secret_valid" not in values:
            expires = values.get("previous_secret_expires_at")
            values["previous_secret_valid"] = values.get("previous_secret") is not None and (
                expires is None or expires > datetime.now(UTC)
            )
        values.pop("previous_secret", None)
        return values


class WebhookWithSecret(WebhookRead):
    """An endpoint with its signing secret: the answer to creating it or rotating the secret."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**READ_EXAMPLE, "secret": SECRET_EXAMPLE}]}
    )

    secret: str = Field(
        description="The Standard Webhooks signing secret (`whsec_` + base64 key). Shown only "
        "in this response: store it now; verify `webhook-signature` with it."
    )


class SecretRotation(InputModel):
    """How long the current secret keeps signing next to the new one."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"overlap_hours": 24}]})

    overlap_hours: float | None = Field(
        default=None,
        ge=0,
        le=MAX_OVERLAP_HOURS,
        description="0 to 168. Deliveries carry a signature by both secrets until this many "
        "hours from now, so receivers can switch without losing any; 0 stops the old secret "
        "at once. Default: the deployment's setting (24 unless configured).",
    )


class WebhookTestSent(ReadModel):
    """The test event queued for the endpoint."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message_id": "msg_0196f5d27c1e7a3b9d2f3e4f5a6b7c8d",
                    "delivery_id": "0196f5d3-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
                }
            ]
        }
    )

    message_id: str = Field(description="The `webhook-id` header the receiver will see.")
    delivery_id: uuid.UUID = Field(description="Follow it in `GET /v1/webhooks/{id}/deliveries`.")


ATTEMPT_EXAMPLE: dict[str, Any] = {
    "attempted_at": "2026-03-01T09:00:05Z",
    "status_code": 503,
    "latency_ms": 120.4,
    "error": None,
    "response_excerpt": "Service Unavailable",
}


class WebhookAttemptRead(ReadModel):
    """One HTTP request of a delivery and what came back."""

    model_config = ConfigDict(json_schema_extra={"examples": [ATTEMPT_EXAMPLE]})

    attempted_at: datetime = Field(description="When the request was sent.")
    status_code: int | None = Field(description="The HTTP status; null when none came back.")
    latency_ms: float = Field(description="Until the response headers arrived, or it failed.")
    error: str | None = Field(
        description="What went wrong on the wire (timeout, connection refused, target refused); "
        "null when an answer came, whatever its status."
    )
    response_excerpt: str | None = Field(
        description="The start of the response body (up to 1000 characters)."
    )


class WebhookDeliveryRead(ReadModel):
    """A message owed to one endpoint, and every attempt at it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0196f5d3-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
                    "endpoint_id": "0196f5d2-7c1e-7a3b-9d2f-3e4f5a6b7c8d",
                    "message_id": "msg_0196f5d27c1e7a3b9d2f3e4f5a6b7c8d",
                    "event_type": "alert.opened",
                    "status": "pending",
                    "attempt_count": 1,
                    "next_attempt_at": "2026-03-01T09:05:05Z",
                    "last_status_code": 503,
                    "last_error": None,
                    "created_at": "2026-03-01T09:00:00Z",
                    "finished_at": None,
                    "attempts": [ATTEMPT_EXAMPLE],
                }
            ]
        }
    )

    id: uuid.UUID = Field(description="The delivery's id; redeliver it by this.")
    endpoint_id: uuid.UUID = Field(description="The endpoint it is owed to.")
    message_id: str = Field(
        description="The `webhook-id` header: the same on every attempt and redelivery, so "
        "receivers can drop duplicates."
    )
    event_type: str = Field(description="The event's type.")
    status: DeliveryStatus = Field(
        description="`pending` (will be tried at `next_attempt_at`), `delivered` (a 2xx came "
        "back) or `failed` (retries used up, or the endpoint answered 410 Gone)."
    )
    attempt_count: int = Field(
        description="Attempts in the current retry schedule; redelivering resets it to 0, "
        "while `attempts` keeps every attempt ever made."
    )
    next_attempt_at: datetime | None = Field(
        description="When it is tried next, while pending; null once finished."
    )
    last_status_code: int | None = Field(description="The HTTP status of the latest attempt.")
    last_error: str | None = Field(description="What went wrong on the wire at the latest.")
    created_at: datetime = Field(description="When the event happened.")
    finished_at: datetime | None = Field(description="When it was delivered or given up.")
    attempts: list[WebhookAttemptRead] = Field(description="Every attempt, oldest first.")


class RecoveryRequest(InputModel):
    """Which failed deliveries to send again, by when they were created."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"since": "2026-03-01T00:00:00+08:00", "until": "2026-03-02T00:00:00+08:00"}
            ]
        }
    )

    since: AwareDatetime = Field(description="Deliveries created at or after this (with a zone).")
    until: AwareDatetime | None = Field(
        default=None,
        description="Deliveries created before this (with a zone), not before `since`. "
        "Default: no end.",
    )

    @field_validator("since", mode="after")
    @classmethod
    def _not_future(cls, value: datetime) -> datetime:
        if value > datetime.now(UTC):
            raise ValueError("since is in the future")
        return value

    @field_validator("until", mode="after")
    @classmethod
    def _after_since(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        since = info.data.get("since")
        if value is not None and since is not None and value < since:
            raise ValueError("until is before since")
        return value


class RecoveryResult(ReadModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"count": 42}]})

    count: int = Field(description="Failed deliveries put back to pending, due now.")

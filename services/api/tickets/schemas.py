import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints

from services.api.schemas import InputModel, PatchModel, ReadModel, Ref, ShortText, Tags
from services.core.models.enums import TicketKind, TicketPriority, TicketStatus

Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
LongText = Annotated[str, Field(max_length=10_000)]
Rating = Annotated[int, Field(ge=1, le=5, description="The customer's satisfaction, 1-5.")]

EXAMPLE: dict[str, Any] = {
    "customer_id": "0196f5d2-0000-7a3b-9d2f-3e4f5a6b7c8d",
    "external_id": "helpdesk-55120",
    "subject": "配送延迟 Delivery delayed",
    "description": "The March order has not arrived after 10 days.",
    "kind": "complaint",
    "priority": "high",
    "assignee": "wang.fang@example.com",
    "tags": ["logistics"],
}


class TicketCreate(InputModel):
    """A new service case. Setting `status` to `resolved` or `closed` stamps `resolved_at` /
    `closed_at`."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    customer_id: uuid.UUID
    channel_id: uuid.UUID | None = Field(
        default=None, description="Defaults to the customer's current channel."
    )
    external_id: Ref | None = Field(default=None, description="Your helpdesk's id (unique).")
    subject: Subject
    description: LongText | None = None
    kind: TicketKind
    priority: TicketPriority = TicketPriority.normal
    status: TicketStatus = TicketStatus.open
    assignee: ShortText | None = None
    tags: Tags = []
    resolution: LongText | None = None
    satisfaction: Rating | None = None
    first_responded_at: AwareDatetime | None = Field(
        default=None, description="When the customer first got an answer."
    )


class TicketUpdate(PatchModel):
    """Fields to change; omitted fields stay, `null` clears an optional one. A status change
    stamps `resolved_at` / `closed_at`; reopening (`open`, `pending`) clears them."""

    NON_NULL = ("subject", "kind", "priority", "status", "tags")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "resolved", "resolution": "Re-shipped."}]}
    )

    channel_id: uuid.UUID | None = None
    external_id: Ref | None = None
    subject: Subject | None = None
    description: LongText | None = None
    kind: TicketKind | None = None
    priority: TicketPriority | None = None
    status: TicketStatus | None = None
    assignee: ShortText | None = None
    tags: Tags | None = None
    resolution: LongText | None = None
    satisfaction: Rating | None = None
    first_responded_at: AwareDatetime | None = None


class TicketRead(ReadModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0196f5d2-7c1e-7a3b-9d2f-3e4f5a6b7c8d",
                    **EXAMPLE,
                    "channel_id": "0196f5d1-0000-7a3b-9d2f-3e4f5a6b7c8d",
                    "status": "open",
                    "resolution": None,
                    "satisfaction": None,
                    "first_responded_at": None,
                    "sla_policy_id": "019ab000-0000-7000-8000-000000000101",
                    "first_response_due_at": "2026-03-01T14:00:00Z",
                    "resolution_due_at": "2026-03-02T10:00:00Z",
                    "first_response_due_soon_at": "2026-03-01T13:12:00Z",
                    "resolution_due_soon_at": "2026-03-02T05:12:00Z",
                    "first_response_warned": False,
                    "resolution_warned": False,
                    "first_response_breached": False,
                    "resolution_breached": False,
                    "paused_since": None,
                    "sla_pauses": [],
                    "resolved_at": None,
                    "closed_at": None,
                    "created_at": "2026-03-01T10:00:00Z",
                    "updated_at": "2026-03-01T10:00:00Z",
                    "version": 1,
                }
            ]
        }
    )

    id: uuid.UUID
    customer_id: uuid.UUID
    channel_id: uuid.UUID | None
    external_id: str | None
    subject: str
    description: str | None
    kind: TicketKind
    priority: TicketPriority
    status: TicketStatus
    assignee: str | None
    tags: list[str]
    resolution: str | None
    satisfaction: int | None
    first_responded_at: datetime | None
    sla_policy_id: uuid.UUID | None = Field(
        description="The SLA policy that timed the ticket: its channel's, else the default one, "
        "chosen on creation and again when priority or channel change; null when none applies."
    )
    first_response_due_at: datetime | None = Field(
        description="When the first answer is due under the SLA policy, counting working time "
        "only and leaving out pauses; read-only."
    )
    resolution_due_at: datetime | None = Field(
        description="When the resolution is due under the SLA policy; read-only."
    )
    first_response_due_soon_at: datetime | None = Field(
        description="When the policy's due-soon share (e.g. 80%) of the first-response target "
        "has elapsed; read-only."
    )
    resolution_due_soon_at: datetime | None = Field(
        description="When the due-soon share of the resolution target has elapsed; read-only."
    )
    first_response_warned: bool = Field(
        description="The scheduled check announced that the first response is due soon "
        "(`ticket.sla_due_soon`); read-only."
    )
    resolution_warned: bool = Field(
        description="The scheduled check announced that the resolution is due soon; read-only."
    )
    first_response_breached: bool = Field(
        description="The first response came late, or was still missing at its due time. Once "
        "set it stays set; read-only."
    )
    resolution_breached: bool = Field(
        description="The resolution came late, or was still missing at its due time. Once set "
        "it stays set; read-only."
    )
    paused_since: datetime | None = Field(
        description="When the SLA clock stopped because the ticket entered one of its policy's "
        "pause statuses (e.g. `pending`); null while it runs."
    )
    sla_pauses: list[tuple[datetime, datetime]] = Field(
        description="Finished pauses as `[start, end]` pairs; the due times leave them out."
    )
    resolved_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Increases on every change; the ETag is its quoted form.")

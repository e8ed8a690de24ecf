import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.api.schemas import InputModel, Name, PatchModel, ReadModel
from services.core.models.enums import TicketPriority, TicketStatus

MAX_MINUTES = 525_600  # a year

Minutes = Annotated[int, Field(ge=1, le=MAX_MINUTES, description="Working minutes, 1-525600.")]
Ratio = Annotated[
    float,
    Field(
        gt=0,
        lt=1,
        description="Share of a target after which the ticket is due soon: `ticket.sla_due_soon` "
        "goes out, e.g. 0.8 for 80%.",
    ),
]
BusinessHoursSpec = Annotated[
    dict[str, Any],
    Field(
        description="When the clock runs: `timezone` (IANA name), `weekly` (opening intervals "
        'per weekday `mon`..`sun`, e.g. `{"mon": [["09:00", "12:00"], ["13:00", "18:00"]]}`; '
        'days left out are closed; `"24:00"` ends a day) and optional `holidays` '
        "(`YYYY-MM-DD` dates, closed all day). Null: around the clock.",
        examples=[
            {
                "timezone": "Asia/Shanghai",
                "weekly": {
                    day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")
                },
                "holidays": ["2026-10-01"],
            }
        ],
    ),
]
PauseStatuses = Annotated[
    list[TicketStatus],
    Field(
        max_length=len(TicketStatus),
        description="Ticket statuses that stop the clock, e.g. `pending` (waiting on the "
        "customer); not `open`. Leaving one moves the due times later by the time spent in it.",
    ),
]

TARGETS_EXAMPLE: dict[str, Any] = {
    "urgent": {"first_response_minutes": 30, "resolution_minutes": 240},
    "high": {"first_response_minutes": 120, "resolution_minutes": 960},
    "normal": {"first_response_minutes": 240, "resolution_minutes": 1920},
    "low": {"first_response_minutes": 480, "resolution_minutes": 4800},
}
EXAMPLE: dict[str, Any] = {
    "name": "华东分销 工作日 East China, working days",
    "channel_id": "0196f5d1-0000-7a3b-9d2f-3e4f5a6b7c8d",
    "is_default": False,
    "targets": TARGETS_EXAMPLE,
    "business_hours": {
        "timezone": "Asia/Shanghai",
        "weekly": {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": ["2026-10-01", "2026-10-02"],
    },
    "pause_statuses": ["pending"],
    "due_soon_ratio": 0.8,
}


class SlaTarget(InputModel):
    """The working time a ticket of one priority has for each answer. The resolution target
    cannot be shorter than the first-response one."""

    first_response_minutes: Minutes
    resolution_minutes: Minutes


class SlaTargets(InputModel):
    """A target for every priority."""

    low: SlaTarget
    normal: SlaTarget
    high: SlaTarget
    urgent: SlaTarget


class SlaTargetsUpdate(PatchModel):
    """The priorities to change; the others keep their targets."""

    NON_NULL = tuple(p.value for p in TicketPriority)

    low: SlaTarget | None = None
    normal: SlaTarget | None = None
    high: SlaTarget | None = None
    urgent: SlaTarget | None = None


def _pause_statuses(value: list[TicketStatus] | None) -> list[TicketStatus] | None:
    if value is None:
        return value
    if len(set(value)) != len(value):
        raise ValueError("pause_statuses has duplicates")
    if TicketStatus.open in value:
        raise ValueError("`open` is the status the clock measures; it cannot pause it")
    return value


class SlaPolicyCreate(InputModel):
    """A new SLA policy. With `channel_id` it times that channel's tickets; with
    `is_default` every ticket whose channel has no policy of its own. A channel has at most one
    active policy, and there is at most one active default."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    name: Name
    channel_id: uuid.UUID | None = Field(
        default=None, description="The channel whose tickets this policy times."
    )
    is_default: bool = Field(
        default=False,
        description="Times tickets of every channel without a policy of its own; not with "
        "`channel_id`.",
    )
    targets: SlaTargets
    business_hours: BusinessHoursSpec | None = None
    pause_statuses: PauseStatuses = [TicketStatus.pending]
    due_soon_ratio: Ratio = 0.8

    _check_pauses = field_validator("pause_statuses")(_pause_statuses)


class SlaPolicyUpdate(PatchModel):
    """Fields to change; omitted fields stay, `null` business hours mean around the clock.
    Tickets keep the due times they have: a change applies to tickets opened afterwards, and to
    those whose priority changes or whose pause ends."""

    NON_NULL = ("name", "is_default", "targets", "pause_statuses", "due_soon_ratio")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"targets": {"urgent": {"first_response_minutes": 15, "resolution_minutes": 120}}}
            ]
        }
    )

    name: Name | None = None
    channel_id: uuid.UUID | None = None
    is_default: bool | None = None
    targets: SlaTargetsUpdate | None = None
    business_hours: BusinessHoursSpec | None = None
    pause_statuses: PauseStatuses | None = None
    due_soon_ratio: Ratio | None = None

    _check_pauses = field_validator("pause_statuses")(_pause_statuses)


class SlaTargetRead(BaseModel):
    first_response_minutes: int
    resolution_minutes: int


class SlaTargetsRead(BaseModel):
    low: SlaTargetRead
    normal: SlaTargetRead
    high: SlaTargetRead
    urgent: SlaTargetRead


class SlaPolicyRead(ReadModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0196f5d2-7c1e-7a3b-9d2f-3e4f5a6b7c8d",
                    **EXAMPLE,
                    "archived_at": None,
                    "created_at": "2026-03-01T10:00:00Z",
                    "updated_at": "2026-03-01T10:00:00Z",
                    "version": 1,
                }
            ]
        }
    )

    id: uuid.UUID
    name: str
    channel_id: uuid.UUID | None
    is_default: bool
    targets: SlaTargetsRead = Field(description="Working minutes per priority.")
    business_hours: dict[str, Any] | None = Field(
        description="When the clock runs, in the form it was given with closed days left out; "
        "null: around the clock."
    )
    pause_statuses: list[TicketStatus]
    due_soon_ratio: float
    archived_at: datetime | None = Field(description="Set when the policy was archived.")
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Increases on every change; the ETag is its quoted form.")


Granularity = Literal["week", "month"]
GroupBy = Literal["priority", "assignee", "channel"]


class SlaComplianceRow(BaseModel):
    """One period and group. A target is *met* when its answer came in time and *breached*
    when it came late or was still missing at its due time; tickets still inside their target
    count in neither, so the compliance share covers only decided tickets."""

    period_start: datetime = Field(
        description="Start of the week (Monday) or month, at midnight in the report's timezone."
    )
    group: str | None = Field(
        description="The priority, the assignee or the channel id; null for tickets without "
        "an assignee or channel."
    )
    tickets: int = Field(description="Tickets opened in the period under an SLA policy.")
    first_response_met: int
    first_response_breached: int
    first_response_compliance: float | None = Field(
        description="Percent of decided first responses that met their target, one decimal; "
        "null when none is decided yet."
    )
    resolution_met: int
    resolution_breached: int
    resolution_compliance: float | None = Field(
        description="Percent of decided resolutions that met their target; null when none is "
        "decided yet."
    )
    breaches: int = Field(description="Tickets that breached either target.")


class SlaComplianceReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "since": "2026-03-02T00:00:00+08:00",
                    "until": "2026-03-16T00:00:00+08:00",
                    "granularity": "week",
                    "group_by": "priority",
                    "timezone": "Asia/Shanghai",
                    "rows": [
                        {
                            "period_start": "2026-03-01T16:00:00Z",
                            "group": "high",
                            "tickets": 12,
                            "first_response_met": 10,
                            "first_response_breached": 2,
                            "first_response_compliance": 83.3,
                            "resolution_met": 8,
                            "resolution_breached": 1,
                            "resolution_compliance": 88.9,
                            "breaches": 3,
                        }
                    ],
                }
            ]
        }
    )

    since: datetime
    until: datetime
    granularity: Granularity
    group_by: GroupBy
    timezone: str
    rows: list[SlaComplianceRow] = Field(description="Ordered by period, then group.")

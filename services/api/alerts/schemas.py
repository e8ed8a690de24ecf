import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from services.api.schemas import InputModel, Name, PatchModel, ReadModel, Tag
from services.core.models import Alert
from services.core.models.enums import (
    AlertKind,
    AlertStatus,
    AlertSubject,
    Severity,
    ValueTier,
)

MAX_DUE_HOURS = 2160  # 90 days

Params = Annotated[
    dict[str, Any],
    Field(
        description="The condition's parameters; which ones depends on `kind`: "
        "`inactivity` {days 1-3650, of: `interaction`|`order`}, "
        "`order_value_drop` {percent 0-100}, `complaints` {count}, `score_below` {score}, "
        "`score_drop` {points}, `band_change` {to: [`yellow`|`red`]}, `sla_breach` {count}, "
        "`satisfaction_drop` {points 0-4}. Stored with defaults filled in."
    ),
]
Tiers = Annotated[
    list[ValueTier],
    Field(
        max_length=3,
        description="Only customers of these value tiers; empty for all. Customer rules only.",
    ),
]
DueHours = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_DUE_HOURS,
        description="An alert's `due_at` is this many hours after it opens (1-2160).",
    ),
]
Owner = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(description="Who works on it, e.g. an account manager's e-mail."),
]
NoteBody = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=5000),
    Field(description="Free text, 1-5000 characters."),
]


def _unique_tiers(tiers: list[ValueTier] | None) -> list[ValueTier] | None:
    if tiers is not None and len(set(tiers)) != len(tiers):
        raise ValueError("tiers has duplicates")
    return tiers


RULE_EXAMPLE: dict[str, Any] = {
    "name": "A 类客户 60 天未下单 A-tier customer silent for 60 days",
    "kind": "inactivity",
    "subject": "customer",
    "params": {"days": 60, "of": "order"},
    "severity": "high",
    "tiers": ["A"],
    "channel_id": None,
    "tag": "vip",
    "auto_resolve": True,
    "due_hours": 48,
    "active": True,
}


class AlertRuleCreate(InputModel):
    """A new rule. `params` are checked against `kind`, and `kind` against `subject`: channels
    take only the score kinds (`score_below`, `score_drop`, `band_change`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [RULE_EXAMPLE]})

    name: Name = Field(description="What people see in lists and notifications.")
    kind: AlertKind = Field(description="The condition the rule watches for.")
    subject: AlertSubject = Field(description="Whether it watches customers or channels.")
    params: Params
    severity: Severity = Field(description="Copied to every alert the rule raises.")
    tiers: Tiers = []
    channel_id: uuid.UUID | None = Field(
        default=None,
        description="Only this channel: its customers for a customer rule, itself for a "
        "channel rule.",
    )
    tag: Tag | None = Field(default=None, description="Only subjects carrying this tag.")
    auto_resolve: bool = Field(
        default=True, description="Resolve its alerts by itself once the condition clears."
    )
    due_hours: DueHours = 72
    active: bool = Field(default=True, description="Inactive rules raise no new alerts.")

    _tiers = field_validator("tiers")(_unique_tiers)


def _immutable(value: Any) -> Any:
    raise ValueError("cannot change; archive this rule and create another")


class AlertRuleUpdate(PatchModel):
    """Fields to change; omitted fields stay, `null` clears `channel_id` or `tag`. `kind` and
    `subject` cannot change: new `params` are checked against the rule's kind."""

    NON_NULL = ("name", "params", "severity", "tiers", "auto_resolve", "due_hours", "active")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"params": {"days": 45, "of": "order"}, "active": False}]}
    )

    name: Name | None = None
    params: Params | None = None
    severity: Severity | None = None
    tiers: Tiers | None = None
    channel_id: uuid.UUID | None = None
    tag: Tag | None = None
    auto_resolve: bool | None = None
    due_hours: DueHours | None = None
    active: bool | None = None
    # Accepted only to refuse them by name: a rule's alerts were raised under its kind.
    kind: SkipJsonSchema[Any] = None
    subject: SkipJsonSchema[Any] = None

    _tiers = field_validator("tiers")(_unique_tiers)
    _kind = field_validator("kind", "subject")(_immutable)


RULE_READ_EXAMPLE: dict[str, Any] = {
    "id": "019ab000-0000-7000-8000-000000000002",
    **RULE_EXAMPLE,
    "archived_at": None,
    "created_at": "2026-02-01T09:00:00Z",
    "updated_at": "2026-02-01T09:00:00Z",
    "version": 1,
}


class AlertRuleRead(ReadModel):
    model_config = ConfigDict(json_schema_extra={"examples": [RULE_READ_EXAMPLE]})

    id: uuid.UUID
    name: str
    kind: AlertKind
    subject: AlertSubject
    params: dict[str, Any] = Field(description="The condition's parameters, defaults filled in.")
    severity: Severity
    tiers: list[ValueTier] = Field(description="Customer value tiers it is limited to.")
    channel_id: uuid.UUID | None
    tag: str | None
    auto_resolve: bool
    due_hours: int
    active: bool
    archived_at: datetime | None = Field(
        description="Set when the rule was deleted: it raises nothing more, its alerts stay."
    )
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Increases on every change; the ETag is its quoted form.")


ALERT_ID = "0196f5d2-9a00-7a3b-9d2f-3e4f5a6b7c8d"
ALERT_EXAMPLE: dict[str, Any] = {
    "id": ALERT_ID,
    "rule_id": "019ab000-0000-7000-8000-000000000002",
    "rule_name": "A-tier customer silent for 60 days",
    "subject": "customer",
    "subject_id": "0196f5d2-0000-7a3b-9d2f-3e4f5a6b7c8d",
    "channel_id": "0196f5d2-7c1e-7a3b-9d2f-3e4f5a6b7c8d",
    "severity": "high",
    "status": "acknowledged",
    "reason": {
        "kind": "inactivity",
        "params": {"days": 60, "of": "order"},
        "band": "yellow",
        "days_since_order": 64.0,
    },
    "owner": "li.wei@example.com",
    "due_at": "2026-02-04T09:00:00Z",
    "opened_at": "2026-02-01T09:00:00Z",
    "last_fired_at": "2026-02-02T09:00:00Z",
    "fire_count": 2,
    "acknowledged_at": "2026-02-01T10:12:00Z",
    "acknowledged_by": "console",
    "closed_at": None,
    "closed_by": None,
    "updated_at": "2026-02-01T10:12:00Z",
    "version": 2,
}
NOTE_EXAMPLE: dict[str, Any] = {
    "id": 17,
    "alert_id": ALERT_ID,
    "author": "console",
    "body": "已电话联系，下周回访 Called; follow up next week.",
    "created_at": "2026-02-01T10:15:00Z",
}


class AlertRead(ReadModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ALERT_EXAMPLE]})

    id: uuid.UUID
    rule_id: uuid.UUID
    rule_name: str = Field(description="The name of the rule that raised it.")
    subject: AlertSubject
    subject_id: uuid.UUID = Field(description="The customer's or channel's id.")
    channel_id: uuid.UUID | None = Field(
        description="The channel itself, or the customer's channel when the alert was raised."
    )
    severity: Severity
    status: AlertStatus = Field(
        description="`open` -> `acknowledged` -> `resolved`; `dismissed` when it needs no work."
    )
    reason: dict[str, Any] = Field(
        description="The figures that raised it: the rule's kind and params, the band, and "
        "the measured values."
    )
    owner: str | None
    due_at: datetime
    opened_at: datetime
    last_fired_at: datetime = Field(description="When the rule last found the condition.")
    fire_count: int = Field(description="How often the rule found the condition while open.")
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    closed_at: datetime | None = Field(description="When it was resolved or dismissed.")
    closed_by: str | None = Field(
        description="Who resolved or dismissed it; `auto` when its condition cleared."
    )
    updated_at: datetime
    version: int = Field(description="Increases on every change; the ETag is its quoted form.")

    @classmethod
    def of(cls, alert: Alert, rule_name: str) -> Self:
        fields = {name: getattr(alert, name) for name in cls.model_fields if name != "rule_name"}
        return cls.model_validate(fields | {"rule_name": rule_name})


class AlertNoteRead(ReadModel):
    model_config = ConfigDict(json_schema_extra={"examples": [NOTE_EXAMPLE]})

    id: int
    alert_id: uuid.UUID
    author: str = Field(description="The name of the API key that wrote it.")
    body: str
    created_at: datetime


class AlertDetail(AlertRead):
    """An alert with its notes, oldest first."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**ALERT_EXAMPLE, "notes": [NOTE_EXAMPLE]}]}
    )

    notes: list[AlertNoteRead] = Field(description="Oldest first.")


class AlertUpdate(PatchModel):
    """Fields to change on an open or acknowledged alert; omitted fields stay, `null` clears
    the owner."""

    NON_NULL = ("due_at",)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"owner": "wang.fang@example.com", "due_at": "2026-02-06T09:00:00Z"}]
        }
    )

    owner: Owner | None = None
    due_at: AwareDatetime | None = Field(default=None, description="When it should be done.")


class AlertClose(InputModel):
    """Optionally, why: kept as a note on the alert."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"note": "客户已恢复下单 Ordering again since March."}]}
    )

    note: NoteBody | None = None


class AlertNoteCreate(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"body": NOTE_EXAMPLE["body"]}]})

    body: NoteBody


OwnedKind = Literal["customers", "channels", "alerts"]
OWNED_KINDS: tuple[OwnedKind, ...] = ("customers", "channels", "alerts")


class OwnerReassign(InputModel):
    """Hand everything one person owns to another: customers, channels, and the open or
    acknowledged alerts. `channel_id` narrows all three (customers of the channel, the channel,
    alerts about it or its customers); `tier` and `tag` narrow customers and their alerts, so
    they cannot be combined with `channels` in `include`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from_owner": "li.wei@example.com",
                    "to_owner": "wang.fang@example.com",
                    "include": ["customers", "alerts"],
                    "tier": "A",
                }
            ]
        }
    )

    from_owner: Owner
    to_owner: Owner
    include: list[OwnedKind] = Field(
        default_factory=lambda: list(OWNED_KINDS),
        min_length=1,
        max_length=3,
        description="What to move; all three by default.",
    )
    channel_id: uuid.UUID | None = Field(default=None, description="Only within this channel.")
    tier: ValueTier | None = Field(default=None, description="Only customers of this value tier.")
    tag: Tag | None = Field(default=None, description="Only customers carrying this tag.")

    @field_validator("include")
    @classmethod
    def _unique_include(cls, include: list[OwnedKind]) -> list[OwnedKind]:
        if len(set(include)) != len(include):
            raise ValueError("include has duplicates")
        return include


class OwnerReassigned(ReadModel):
    """How many of each moved to the new owner."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"customers": 42, "channels": 0, "alerts": 5}]}
    )

    customers: int = Field(description="Customers moved; 0 when not included.")
    channels: int = Field(description="Channels moved; 0 when not included.")
    alerts: int = Field(description="Open or acknowledged alerts moved; 0 when not included.")

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    SkipValidation,
    StringConstraints,
    field_validator,
)

from services.api.problems import ProblemField
from services.api.schemas import (
    Attributes,
    BatchInput,
    InputModel,
    Name,
    PatchModel,
    ReadModel,
    Ref,
    ShortText,
    Tags,
)
from services.api.scoring.schemas import HealthSummary
from services.core.models.enums import LifecycleStage, ValueTier

BATCH_LIMIT = 1000

# A syntax check only: deliverability is the mail system's business. Unicode is allowed (IDN).
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    Field(examples=["zhang.min@example.com"]),
]
Phone = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        max_length=50,
        pattern=r"^\+?\(?[0-9][0-9 ()./-]*[0-9](?:\s*(?:x|ext\.?)\s*[0-9]{1,6})?$",
    ),
    Field(description="Digits with optional `+`, spaces, dashes, dots, brackets and extension."),
]
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Notes = Annotated[str, Field(max_length=10_000)]

EXAMPLE: dict[str, Any] = {
    "external_ref": "CRM-100234",
    "name": "张敏 Zhang Min",
    "email": "zhang.min@example.com",
    "phone": "+86 138 0013 8000",
    "address": "上海市浦东新区世纪大道 100 号",
    "owner": "li.wei@example.com",
    "channel_id": "0196f5d2-7c1e-7a3b-9d2f-3e4f5a6b7c8d",
    "value_tier": "A",
    "lifecycle_stage": "active",
    "tags": ["vip", "华东"],
    "attributes": {"industry": "retail"},
    "birthday": "1988-04-12",
    "contract_end": "2027-06-30",
    "notes": "Prefers WeChat.",
}


class _CustomerInput(InputModel):
    @field_validator("birthday", mode="after", check_fields=False)
    @classmethod
    def _birthday_past(cls, value: date | None) -> date | None:
        if value is not None and value > datetime.now(UTC).date():
            raise ValueError("birthday is in the future")
        return value


class CustomerCreate(_CustomerInput):
    """A new customer."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    external_ref: Ref | None = None
    name: Name
    email: Email | None = None
    phone: Phone | None = None
    address: Address | None = None
    owner: ShortText | None = Field(default=None, description="Account manager responsible.")
    channel_id: uuid.UUID | None = Field(
        default=None, description="The channel the customer buys through: existing, not archived."
    )
    value_tier: ValueTier | None = Field(default=None, description="`A` (highest) to `C`.")
    lifecycle_stage: LifecycleStage = LifecycleStage.onboarding
    tags: Tags = []
    attributes: Attributes = {}
    birthday: date | None = None
    contract_end: date | None = None
    notes: Notes | None = None


class CustomerUpdate(_CustomerInput, PatchModel):
    """Fields to change; omitted fields stay, `null` clears an optional one. Changing
    `channel_id` closes the current channel membership and opens a new one."""

    NON_NULL = ("name", "lifecycle_stage", "tags", "attributes")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"lifecycle_stage": "at_risk", "value_tier": "B"}]}
    )

    external_ref: Ref | None = None
    name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    address: Address | None = None
    owner: ShortText | None = None
    channel_id: uuid.UUID | None = None
    value_tier: ValueTier | None = None
    lifecycle_stage: LifecycleStage | None = None
    tags: Tags | None = None
    attributes: Attributes | None = None
    birthday: date | None = None
    contract_end: date | None = None
    notes: Notes | None = None


class CustomerUpsert(CustomerCreate):
    """One batch item, matched to a stored customer by `external_ref`. A new customer is
    created with defaults for omitted fields; an existing one keeps the fields omitted here."""

    external_ref: Ref


class CustomerBatch(BatchInput):
    """Up to 1,000 upserts. Each item is checked on its own: a bad item is reported in its
    result and does not stop the others."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        EXAMPLE,
                        {"external_ref": "CRM-100235", "name": "Wang Fang", "value_tier": "C"},
                    ]
                }
            ]
        }
    )

    # Items are validated one by one in the service, so a bad item cannot reject the batch.
    items: Annotated[list[SkipValidation[CustomerUpsert]], Field(max_length=BATCH_LIMIT)]


READ_EXAMPLE: dict[str, Any] = {
    "id": "0196f5d2-9a10-7c44-8e21-5b6c7d8e9f01",
    **EXAMPLE,
    "archived_at": None,
    "created_at": "2026-01-05T08:30:00Z",
    "updated_at": "2026-01-05T08:30:00Z",
    "version": 1,
}


class CustomerRead(ReadModel):
    model_config = ConfigDict(json_schema_extra={"examples": [READ_EXAMPLE]})

    id: uuid.UUID
    external_ref: str | None
    name: str
    email: str | None
    phone: str | None
    address: str | None
    owner: str | None
    channel_id: uuid.UUID | None
    value_tier: ValueTier | None
    lifecycle_stage: LifecycleStage
    tags: list[str]
    attributes: Attributes
    birthday: date | None
    contract_end: date | None
    notes: str | None
    archived_at: datetime | None = Field(description="Set when the customer was archived.")
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Increases on every change; the ETag is its quoted form.")


class CustomerListItem(CustomerRead):
    """A customer as lists show it: with its current health score in brief."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **READ_EXAMPLE,
                    "health": {"score": 63.5, "band": "yellow", "as_of": "2026-02-01T09:00:00Z"},
                }
            ]
        }
    )

    health: HealthSummary | None = Field(
        default=None,
        description="Score, band and the time it describes; null before the first score. "
        "Details at `/v1/customers/{id}/health`.",
    )


class MembershipRead(ReadModel):
    channel_id: uuid.UUID
    channel_name: str
    started_at: datetime
    ended_at: datetime | None = Field(description="Null while the customer is in this channel.")


class ChannelHistory(ReadModel):
    items: list[MembershipRead] = Field(description="Newest first.")


BatchStatus = Literal["created", "updated", "unchanged", "error"]


class BatchItemResult(ReadModel):
    index: int = Field(description="Position of the item in the request.")
    status: BatchStatus = Field(
        description="`unchanged`: the stored customer already had these values."
    )
    id: uuid.UUID | None = Field(description="The customer's id; null on error.")
    external_ref: str | None
    errors: list[ProblemField] = Field(default_factory=list, description="Why the item failed.")


class BatchResult(ReadModel):
    results: list[BatchItemResult] = Field(description="One per item, in request order.")
    created: int
    updated: int
    unchanged: int
    errors: int

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_extra_types.currency_code import ISO4217

from services.api.schemas import Attributes, BatchInput, InputModel, ReadModel, Ref, has_nul
from services.core.models.enums import InteractionKind

MAX_BATCH = 1_000
AMOUNT_KINDS = frozenset({InteractionKind.order, InteractionKind.payment})

EXAMPLE: dict[str, Any] = {
    "customer_external_ref": "C-10086",
    "kind": "order",
    "occurred_at": "2026-03-01T10:30:00+08:00",
    "amount": "1280.00",
    "currency": "CNY",
    "external_id": "erp-order-778812",
    "summary": "春季补货 spring restock",
    "attributes": {"sku_count": 12},
}


def _rule(message: str) -> PydanticCustomError:
    return PydanticCustomError("rule", message)


class InteractionCreate(InputModel):
    """Something that happened with a customer. Name the customer by `customer_id` or by
    `customer_external_ref`, exactly one."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    customer_external_ref: Ref | None = Field(
        default=None, description="The customer's `external_ref`, instead of `customer_id`."
    )
    customer_id: uuid.UUID | None = Field(
        default=None,
        validate_default=True,
        description="The customer's id, instead of `customer_external_ref`.",
    )
    channel_id: uuid.UUID | None = Field(
        default=None, description="Defaults to the customer's current channel."
    )
    kind: InteractionKind
    occurred_at: AwareDatetime = Field(
        description="When it happened, with a time zone; may be in the past (imports)."
    )
    amount: Decimal | None = Field(
        default=None,
        validate_default=True,
        ge=0,
        lt=10**14,
        decimal_places=4,
        description="Required for an `order`, allowed for a `payment`, rejected otherwise. "
        "Send it as a string to keep every digit.",
    )
    currency: ISO4217 | None = Field(
        default=None,
        validate_default=True,
        description="ISO 4217 code of `amount`; defaults to the service's default currency.",
    )
    satisfaction: int | None = Field(
        default=None, ge=1, le=5, description="1-5; only for `feedback`."
    )
    nps: int | None = Field(
        default=None,
        validate_default=True,
        ge=0,
        le=10,
        description="Net promoter score 0-10; only for `feedback`, which needs this or "
        "`satisfaction`.",
    )
    external_id: Ref | None = Field(
        default=None,
        description="Your id for this event (unique); sending it again is a no-op.",
    )
    summary: str | None = Field(default=None, max_length=10_000)
    attributes: Attributes = Field(default_factory=dict)

    @field_validator("customer_external_ref", "external_id", "summary", "attributes")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # Replaces InputModel's check of every field with one of the fields that hold text:
        # batches parse this model a thousand times per request.
        if value is not None and has_nul(value):
            raise ValueError("contains a NUL character")
        return value

    @field_validator("customer_id")
    @classmethod
    def _one_customer(cls, value: uuid.UUID | None, info: ValidationInfo) -> uuid.UUID | None:
        if "customer_external_ref" not in info.data:
            return value
        by_ref = info.data["customer_external_ref"] is not None
        if value is None and not by_ref:
            raise _rule("customer_id or customer_external_ref is required")
        if value is not None and by_ref:
            raise _rule("send customer_id or customer_external_ref, not both")
        return value

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        kind = info.data.get("kind")
        if kind is None:
            return value
        if value is None and kind == InteractionKind.order:
            raise _rule("an order needs an amount")
        if value is not None and kind not in AMOUNT_KINDS:
            raise _rule("only orders and payments carry an amount")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and "amount" in info.data and info.data["amount"] is None:
            raise _rule("currency is only allowed with an amount")
        return value

    @field_validator("satisfaction")
    @classmethod
    def _satisfaction(cls, value: int | None, info: ValidationInfo) -> int | None:
        kind = info.data.get("kind")
        if value is not None and kind is not None and kind != InteractionKind.feedback:
            raise _rule("only feedback carries a satisfaction rating")
        return value

    @field_validator("nps")
    @classmethod
    def _nps(cls, value: int | None, info: ValidationInfo) -> int | None:
        kind = info.data.get("kind")
        if kind is None:
            return value
        if value is not None and kind != InteractionKind.feedback:
            raise _rule("only feedback carries an NPS")
        if kind == InteractionKind.feedback and value is None:
            if "satisfaction" in info.data and info.data["satisfaction"] is None:
                raise _rule("feedback needs satisfaction (1-5) or nps (0-10)")
        return value


class InteractionRead(ReadModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0196f5d2-7c1e-7a3b-9d2f-3e4f5a6b7c8d",
                    "customer_id": "0196f5d2-0000-7a3b-9d2f-3e4f5a6b7c8d",
                    "channel_id": "0196f5d1-0000-7a3b-9d2f-3e4f5a6b7c8d",
                    "kind": "order",
                    "occurred_at": "2026-03-01T02:30:00Z",
                    "amount": "1280.0000",
                    "currency": "CNY",
                    "satisfaction": None,
                    "nps": None,
                    "external_id": "erp-order-778812",
                    "summary": "春季补货 spring restock",
                    "attributes": {"sku_count": 12},
                    "created_at": "2026-03-01T02:30:01Z",
                }
            ]
        }
    )

    id: uuid.UUID
    customer_id: uuid.UUID
    channel_id: uuid.UUID | None
    kind: InteractionKind
    occurred_at: datetime
    amount: Decimal | None = Field(description='A decimal string, e.g. `"1280.0000"`.')
    currency: str | None
    satisfaction: int | None
    nps: int | None
    external_id: str | None
    summary: str | None
    attributes: Attributes
    created_at: datetime


def _as_is(value: Any) -> Any:
    return value


# Items are parsed one by one in the service, so one bad item is reported instead of failing all.
BatchItem = Annotated[Any, PlainValidator(_as_is, json_schema_input_type=InteractionCreate)]


class InteractionBatch(BatchInput):
    """Up to 1,000 interactions; each is checked on its own and reported by its index."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [EXAMPLE]}]})

    items: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)


class ItemError(ReadModel):
    field: str = Field(description="`items.<index>.<field>`.")
    message: str
    type: str


class BatchItemResult(ReadModel):
    index: int
    status: Literal["created", "duplicate", "error"] = Field(
        description="`duplicate`: an interaction with this `external_id` was already stored; "
        "`id` is that one."
    )
    id: uuid.UUID | None
    errors: list[ItemError] = []


class InteractionBatchResult(ReadModel):
    results: list[BatchItemResult]
    created: int
    duplicates: int
    errors: int

import uuid
from datetime import date, datetime
from typing import Any, Self

from pydantic import ConfigDict, Field, model_validator

from services.api.schemas import (
    Attributes,
    InputModel,
    Name,
    PatchModel,
    ReadModel,
    Ref,
    ShortText,
    Tags,
)
from services.api.scoring.schemas import HealthSummary
from services.core.models.enums import ChannelStatus, ChannelTier, ChannelType

EXAMPLE: dict[str, Any] = {
    "external_ref": "CH-0042",
    "name": "华东分销 East China Distribution",
    "type": "distributor",
    "tier": "core",
    "region": "East China",
    "owner": "li.wei@example.com",
    "status": "active",
    "contract_start": "2025-01-01",
    "contract_end": "2027-12-31",
    "tags": ["strategic"],
    "attributes": {"erp_code": "D-118"},
}


def _check_contract(start: date | None, end: date | None) -> None:
    if start and end and end < start:
        raise ValueError("contract_end is before contract_start")


class ChannelCreate(InputModel):
    """A new sales channel."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    external_ref: Ref | None = None
    name: Name
    type: ChannelType
    tier: ChannelTier | None = None
    region: ShortText | None = None
    owner: ShortText | None = Field(default=None, description="Account manager responsible.")
    status: ChannelStatus = ChannelStatus.active
    contract_start: date | None = None
    contract_end: date | None = None
    tags: Tags = []
    attributes: Attributes = {}
    notes: str | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def _contract(self) -> Self:
        _check_contract(self.contract_start, self.contract_end)
        return self


class ChannelUpdate(PatchModel):
    """Fields to change; omitted fields stay, `null` clears an optional one."""

    NON_NULL = ("name", "type", "status", "tags", "attributes")

    model_config = ConfigDict(json_schema_extra={"examples": [{"owner": "wang.fang@example.com"}]})

    external_ref: Ref | None = None
    name: Name | None = None
    type: ChannelType | None = None
    tier: ChannelTier | None = None
    region: ShortText | None = None
    owner: ShortText | None = None
    status: ChannelStatus | None = None
    contract_start: date | None = None
    contract_end: date | None = None
    tags: Tags | None = None
    attributes: Attributes | None = None
    notes: str | None = Field(default=None, max_length=10_000)


READ_EXAMPLE: dict[str, Any] = {"id": "0196f5d2-7c1e-7a3b-9d2f-3e4f5a6b7c8d", **EXAMPLE}


class ChannelRead(ReadModel):
    model_config = ConfigDict(json_schema_extra={"examples": [READ_EXAMPLE]})

    id: uuid.UUID
    external_ref: str | None
    name: str
    type: ChannelType
    tier: ChannelTier | None
    region: str | None
    owner: str | None
    status: ChannelStatus
    contract_start: date | None
    contract_end: date | None
    tags: list[str]
    attributes: Attributes
    notes: str | None
    archived_at: datetime | None = Field(description="Set when the channel was archived.")
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Increases on every change; the ETag is its quoted form.")


class ChannelListItem(ChannelRead):
    """A channel as lists show it: with its current health score in brief."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **READ_EXAMPLE,
                    "health": {"score": 74.0, "band": "green", "as_of": "2026-02-01T09:00:00Z"},
                }
            ]
        }
    )

    health: HealthSummary | None = Field(
        default=None,
        description="Score, band and the time it describes; null before the first score. "
        "Details at `/v1/channels/{id}/health`.",
    )

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Query
from pydantic import AwareDatetime, ConfigDict, Field, field_validator

from services.api.schemas import InputModel, ReadModel
from services.core.scoring.profile import EXAMPLE as PROFILE_EXAMPLE
from services.core.scoring.profile import ScoringProfile

RECOMPUTE_LIMIT = 10_000
EARLIEST_YEAR = 1900


class Band(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


BandQuery = Annotated[
    Band | None, Query(description="Only those in this band; unscored ones never match.")
]
ScoreMin = Annotated[
    float | None, Query(ge=0, le=100, description="Only those scoring at least this.")
]
ScoreMax = Annotated[
    float | None, Query(ge=0, le=100, description="Only those scoring at most this.")
]
Since = Annotated[
    AwareDatetime | None, Query(description="Only scores as of this time or later (with a zone).")
]
Until = Annotated[
    AwareDatetime | None,
    Query(description="Only scores as of earlier than this time (with a zone)."),
]


class HealthSummary(ReadModel):
    """The current score in brief, as list items carry it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"score": 63.5, "band": "yellow", "as_of": "2026-02-01T09:00:00Z"}]
        }
    )

    score: float = Field(description="Health score, 0 (churning) to 100.")
    band: Band = Field(description="`green`, `yellow` or `red`, from the profile's cut-offs.")
    as_of: datetime = Field(description="The time the score describes.")

    @classmethod
    def of(
        cls, score: float | None, band: str | None, as_of: datetime | None
    ) -> "HealthSummary | None":
        """From the columns of a LEFT JOIN: null when nothing is scored yet."""
        if score is None or band is None or as_of is None:
            return None
        return cls(score=score, band=Band(band), as_of=as_of)


CONTRIBUTIONS: dict[str, float] = {
    "recency": 7.0,
    "frequency": 27.5,
    "cadence": 0.0,
    "monetary_trend": 0.0,
    "engagement": 6.0,
    "support": 12.0,
    "satisfaction": 7.0,
    "tenure": 4.0,
}
HEALTH_EXAMPLE: dict[str, Any] = {
    "score": 63.5,
    "band": "yellow",
    "trend": -8.5,
    "as_of": "2026-02-01T09:00:00Z",
    "profile_version": 2,
    "contributions": CONTRIBUTIONS,
    "features": {"days_since_order": 41, "orders_90d": 2, "complaints_90d": 1},
    "computed_at": "2026-02-01T09:00:02Z",
}
HISTORY_EXAMPLE: dict[str, Any] = {
    "id": 1042,
    "score": 63.5,
    "band": "yellow",
    "contributions": CONTRIBUTIONS,
    "profile_version": 2,
    "as_of": "2026-02-01T09:00:00Z",
}


class _Health(ReadModel):
    score: float = Field(description="Health score, 0 (churning) to 100.")
    band: Band = Field(description="`green`, `yellow` or `red`, from the profile's cut-offs.")
    trend: float | None = Field(
        description="Score change against 30 days before `as_of`; null without a score then."
    )
    as_of: datetime = Field(description="The time the score describes.")
    profile_version: int = Field(description="Version of the scoring profile that produced it.")
    contributions: dict[str, float | None] = Field(
        description="Points each factor adds to the score."
    )
    features: dict[str, Any] = Field(description="The measured inputs the factors came from.")
    computed_at: datetime = Field(description="When the score was computed.")


class CustomerHealthRead(_Health):
    """A customer's current health score and what it is made of."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"customer_id": "0196f5d2-9a10-7c44-8e21-5b6c7d8e9f01", **HEALTH_EXAMPLE}]
        }
    )

    customer_id: uuid.UUID


class ChannelHealthRead(_Health):
    """A channel's current health score and what it is made of."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "channel_id": "0196f5d2-7c1e-7a3b-9d2f-3e4f5a6b7c8d",
                    **HEALTH_EXAMPLE,
                    "contributions": {"customers": 45.0, "activity": 10.5, "tickets": 8.0},
                    "features": {"customers": 120, "interactions_90d": 14},
                }
            ]
        }
    )

    channel_id: uuid.UUID


class HealthHistoryRead(ReadModel):
    """A past score: one is kept whenever the score or band changed, and at least one a day."""

    model_config = ConfigDict(json_schema_extra={"examples": [HISTORY_EXAMPLE]})

    id: int
    score: float = Field(description="Health score, 0 (churning) to 100.")
    band: Band
    contributions: dict[str, float | None] = Field(
        description="Points each factor added to the score."
    )
    profile_version: int
    as_of: datetime = Field(description="The time the score describes.")


class RecomputeRequest(InputModel):
    """Recompute scores from stored interactions as of a time, as the live path would have."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "as_of": "2025-12-31T23:59:59+08:00",
                    "customer_ids": ["0196f5d2-9a10-7c44-8e21-5b6c7d8e9f01"],
                },
                {},
            ]
        }
    )

    as_of: AwareDatetime | None = Field(
        default=None,
        description="With a zone, not in the future nor before 1900; only interactions that "
        "occurred at or before it count. Default: now.",
    )
    customer_ids: list[uuid.UUID] | None = Field(
        default=None,
        min_length=1,
        max_length=RECOMPUTE_LIMIT,
        description="Up to 10,000 distinct existing customers; omit or null for all of them.",
    )

    @field_validator("as_of", mode="after")
    @classmethod
    def _not_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC):
            raise ValueError("as_of is in the future")
        if value is not None and value.year < EARLIEST_YEAR:
            # Scoring looks back years from as_of: near year 1 that falls off the calendar.
            raise ValueError(f"as_of is before {EARLIEST_YEAR}")
        return value

    @field_validator("customer_ids", mode="after")
    @classmethod
    def _distinct(cls, value: list[uuid.UUID] | None) -> list[uuid.UUID] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("customer_ids has duplicates")
        return value


class ProfileSaved(ScoringProfile):
    """The stored profile, and the job that rescores every customer with it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**PROFILE_EXAMPLE, "recompute_job_id": "0196f5d3-1a2b-7c3d-8e4f-5a6b7c8d9e0f"}
            ]
        }
    )

    recompute_job_id: uuid.UUID | None = Field(
        description="The rescoring job (`GET /v1/jobs/{id}`); null when the profile sent "
        "equals the active one and nothing was stored."
    )

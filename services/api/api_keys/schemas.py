import uuid
from datetime import UTC, datetime

from pydantic import AwareDatetime, ConfigDict, Field, field_validator

from services.api.schemas import InputModel, Name, ReadModel
from services.core.models.enums import Scope

MAX_RATE_LIMIT = 1_000_000


class ApiKeyCreate(InputModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "order-system", "scopes": ["write"]},
                {
                    "name": "bi-export",
                    "scopes": ["read"],
                    "expires_at": "2027-01-01T00:00:00Z",
                    "rate_limit_per_minute": 600,
                },
            ]
        }
    )

    name: Name = Field(description="Who or what uses the key.")
    scopes: list[Scope] = Field(
        min_length=1, description="`read`; `write` (includes read); `admin` (includes both)."
    )
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When the key stops working (a future time with a zone); null: never. "
        "Requests with an expired key get 401.",
    )
    rate_limit_per_minute: int | None = Field(
        default=None,
        ge=0,
        le=MAX_RATE_LIMIT,
        description="Requests per minute this key may make; null: the deployment's default "
        "(`RETENTION_RATE_LIMIT_PER_MINUTE`), 0: no limit.",
    )

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value


class ApiKeyRead(ReadModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="When the key last authenticated a request, to the minute: it is written "
        "at most once a minute."
    )
    expires_at: datetime | None = Field(description="When the key stops working; null: never.")
    rate_limit_per_minute: int | None = Field(
        description="The key's own limit; null: the deployment's default, 0: no limit."
    )
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret key. Shown only in this response: store it now.")

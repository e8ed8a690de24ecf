import uuid
from datetime import datetime

from pydantic import ConfigDict, Field

from services.api.schemas import InputModel, Name, ReadModel
from services.core.models.enums import Scope


class ApiKeyCreate(InputModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "order-system", "scopes": ["write"]}]}
    )

    name: Name = Field(description="Who or what uses the key.")
    scopes: list[Scope] = Field(
        min_length=1, description="`read`; `write` (includes read); `admin` (includes both)."
    )


class ApiKeyRead(ReadModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret key. Shown only in this response: store it now.")

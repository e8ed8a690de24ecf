import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from services.api.schemas import ReadModel


class AuditEventRead(ReadModel):
    id: int
    occurred_at: datetime
    actor_id: uuid.UUID | None = Field(
        description="The API key that made the change; null for the system."
    )
    actor_name: str
    action: str = Field(description="create, update, archive, delete, upsert, revoke, ...")
    resource_type: str
    resource_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None

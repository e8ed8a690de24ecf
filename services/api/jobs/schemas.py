import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field

from services.api.schemas import ReadModel


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


EXAMPLE: dict[str, Any] = {
    "id": "0196f5d3-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
    "kind": "recompute",
    "status": "running",
    "progress": 0.4,
    "done": 400_000,
    "total": 1_000_000,
    "result": None,
    "errors": [],
    "params": {"as_of": "2026-01-31T16:00:00+00:00", "customer_ids": None},
    "created_by": "crm-sync",
    "created_at": "2026-02-01T09:00:00Z",
    "started_at": "2026-02-01T09:00:01Z",
    "finished_at": None,
}


class JobRead(ReadModel):
    """A long-running request; poll it until `status` is `succeeded` or `failed`."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    id: uuid.UUID
    kind: str = Field(description="What the job does, e.g. `recompute`.")
    status: JobStatus = Field(description="`queued`, `running`, `succeeded` or `failed`.")
    progress: float = Field(description="Share of the work done, 0 to 1.")
    done: int = Field(description="Items processed so far (customers, for a recompute).")
    total: int | None = Field(description="Items to process; null until the job has counted.")
    result: dict[str, Any] | None = Field(description="What the job produced, once succeeded.")
    errors: list[dict[str, Any]] = Field(description="Why the job failed, or what it skipped.")
    params: dict[str, Any] = Field(description="The request as the job received it.")
    created_by: str = Field(description="Name of the API key that asked for the job.")
    created_at: datetime
    started_at: datetime | None = Field(description="Null while queued.")
    finished_at: datetime | None = Field(description="Null until succeeded or failed.")

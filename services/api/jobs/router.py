import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from services.api.auth import Reader
from services.api.deps import ReadSession, Rows, read_one
from services.api.jobs.schemas import JobRead, JobStatus
from services.api.pagination import Cursor, Limit, Page, fetch_page
from services.api.problems import V1_RESPONSES, responses
from services.core.models import Job

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=V1_RESPONSES)


@router.get("", response_model=Page[JobRead], summary="List jobs, newest first")
async def list_jobs(
    session: ReadSession,
    _: Reader,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: JobStatus | None = None,
    kind: Annotated[str | None, Query(max_length=50, description="e.g. `recompute`.")] = None,
) -> Page[JobRead]:
    query = select(Job)
    if status is not None:
        query = query.where(Job.status == status)
    if kind is not None:
        query = query.where(Job.kind == kind)
    columns = {"created_at": Job.created_at, "id": Job.id}
    rows, next_cursor = await fetch_page(session, query, "-created_at", columns, cursor, limit)
    return Page(items=[JobRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{job_id}",
    response_model=JobRead,
    summary="Get a job",
    description="Status, progress and outcome of a job such as a recompute.",
    responses=responses(404),
)
async def get_job(job_id: uuid.UUID, rows: Rows, _: Reader) -> Response:
    return await read_one(rows, Job, JobRead, job_id)

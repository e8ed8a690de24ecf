import asyncio
import shutil
import uuid
from functools import partial
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import FileResponse, JSONResponse

from services.api.auth import Reader, Writer
from services.api.deps import ReadSession, Session
from services.api.idempotency import Created, IdempotencyKey, idempotent_create
from services.api.imports import service
from services.api.imports.schemas import ERRORS_EXAMPLE, REQUEST_BODY
from services.api.imports.upload import receive
from services.api.jobs.schemas import JobRead
from services.api.problems import PROBLEM_JSON, V1_RESPONSES, Problem, responses
from services.core.config import Settings
from services.core.imports import uploads
from services.core.models.base import new_id

router = APIRouter(prefix="/imports", tags=["imports"], responses=V1_RESPONSES)

UPLOAD_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **responses(400, 409),
    413: {
        "model": Problem,
        "content": {PROBLEM_JSON: {}},
        "description": "The file is larger than `RETENTION_IMPORT_MAX_BYTES` (2 GiB by default)",
    },
    415: {
        "model": Problem,
        "content": {PROBLEM_JSON: {}},
        "description": "The body is not multipart/form-data",
    },
}


@router.post(
    "",
    response_model=JobRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Import a CSV or NDJSON file",
    description="Uploads a file of `channels`, `customers`, `interactions` or `tickets` as "
    "multipart/form-data and queues a job that imports it, exactly as `retention import` "
    "does: batch by batch, rows that fail going to an error report while every other row is "
    "imported. A file whose columns do not fit the kind is refused here, before any job. "
    "Answers 202 with the job; poll `Location` (`/v1/jobs/{id}`): `done` counts the rows "
    "committed, `progress` the share of the file's bytes, and once it succeeded `result` has "
    "`run_id`, `rows`, `imported`, `duplicates`, `failed`, `recompute_job_id` and "
    "`has_error_report`; fetch that report at `/v1/imports/{id}/errors`.",
    responses=UPLOAD_PROBLEMS,
    openapi_extra={"requestBody": REQUEST_BODY},
)
async def create_import(
    request: Request,
    session: Session,
    actor: Writer,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    settings: Settings = request.app.state.settings
    job_id = new_id()
    directory = uploads.job_dir(settings, job_id)
    created = False
    answer: JSONResponse | None = None
    try:
        received = await receive(request, directory / uploads.PARTIAL, settings.import_max_bytes)
        params = await service.check(settings, job_id, received)

        async def create() -> Created:
            nonlocal created
            job = await service.queue_import(session, actor, job_id, params)
            created = True
            return JobRead.model_validate(job), {"Location": f"/v1/jobs/{job.id}"}

        answer = await idempotent_create(
            request, session, actor, idempotency_key, params, create, status_code=202
        )
    finally:
        if answer is None or not created:  # refused, or a replay: the job has its own file
            await asyncio.to_thread(partial(shutil.rmtree, directory, ignore_errors=True))
    return answer


@router.get(
    "/{job_id}/errors",
    summary="Download an import's error report",
    description="The rows of the import that failed, as CSV (UTF-8 with a byte-order mark): "
    "`file`, `line` (where the row starts), `field` (empty when the whole line is unreadable) "
    "and `reason`. 404 while the job has not succeeded, and when no row failed.",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The error report",
            "content": {"text/csv": {"schema": {"type": "string"}, "example": ERRORS_EXAMPLE}},
        },
        **responses(404),
    },
)
async def get_errors(
    job_id: uuid.UUID, request: Request, session: ReadSession, _: Reader
) -> FileResponse:
    path, name = await service.error_report(session, request.app.state.settings, job_id)
    return FileResponse(path, media_type="text/csv; charset=utf-8", filename=name)

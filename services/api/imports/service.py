"""Checking an uploaded import and queueing its job; finding a finished job's error report."""

import asyncio
import uuid
from pathlib import Path, PurePosixPath

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.imports.schemas import ImportForm, ImportParams
from services.api.imports.upload import Received
from services.api.jobs.schemas import JobRead
from services.core import audit
from services.core.config import Settings
from services.core.errors import FieldError, InvalidInput, NotFound
from services.core.events import JOBS_REQUESTED, emit
from services.core.imports import uploads
from services.core.imports.service import EXTENSIONS, ImportFormat, check_source
from services.core.models import Job
from services.core.models.imports import ImportKind

HEADER_CHECK_BYTES = 1 << 20


def _form_errors(exc: ValidationError) -> list[FieldError]:
    return [
        FieldError(
            "body." + ".".join(str(p) for p in e["loc"]),
            "unknown field" if e["type"] == "extra_forbidden" else e["msg"],
            e["type"],
        )
        for e in exc.errors()
    ]


def _check_header(kind: ImportKind, path: Path, format_: ImportFormat) -> None:
    """Refuse now, with a 422, a file the worker would refuse. A file whose first line does
    not end within HEADER_CHECK_BYTES is left for the worker to judge: reading that line here
    could take as much memory as the file is long."""
    with path.open("rb") as stream:
        head = stream.read(HEADER_CHECK_BYTES)
    if b"\n" in head or len(head) < HEADER_CHECK_BYTES:
        check_source(kind, path, format_)


def _format(form: ImportForm | None, filename: str) -> ImportFormat | None:
    if form is not None and form.format is not None:
        return form.format
    return EXTENSIONS.get(PurePosixPath(filename).suffix.lower())


async def check(settings: Settings, job_id: uuid.UUID, received: Received) -> ImportParams:
    """The upload's params once its fields, its size and its header are right; the file is
    then at its place for the worker. Every problem found is a 422 naming its field."""
    filename = uploads.display_name(received.filename or "")
    form, errors = _read_form(received.fields)
    format_ = _format(form, filename)
    if received.path is None:
        errors.append(FieldError("body.file", "Field required", "missing"))
    elif received.size == 0:
        errors.append(FieldError("body.file", "is empty", "empty"))
    elif format_ is None and (form is not None or "format" not in received.fields):
        errors.append(
            FieldError(
                "body.file",
                f"cannot tell the format of {filename or 'a file without a name'} from its "
                "extension (.csv, .ndjson or .jsonl): send format",
                "unknown_extension",
            )
        )
    if errors or form is None or format_ is None or received.path is None:
        raise InvalidInput("The import request is invalid.", errors)
    path = uploads.upload_path(settings, job_id, format_)
    await asyncio.to_thread(received.path.rename, path)
    try:
        await asyncio.to_thread(_check_header, form.kind, path, format_)
    except InvalidInput as exc:
        detail = str(exc).replace(path.name, filename or path.name)
        at_fault = [
            FieldError("body.file", f"{e.field or '(blank)'} {e.message}", e.type)
            for e in exc.errors
        ] or [FieldError("body.file", detail, "unreadable")]
        raise InvalidInput(detail, at_fault) from None
    return ImportParams(
        kind=form.kind,
        filename=filename,
        format=format_,
        recompute=form.recompute,
        as_of=form.as_of,
        size=received.size,
        sha256=received.sha256,
    )


def _read_form(fields: dict[str, str]) -> tuple[ImportForm | None, list[FieldError]]:
    # An empty optional field (as HTML forms send it) means "not given".
    given = {k: v for k, v in fields.items() if v.strip() or k not in ("format", "as_of")}
    try:
        return ImportForm.model_validate(given), []
    except ValidationError as exc:
        return None, _form_errors(exc)


async def queue_import(
    session: AsyncSession, actor: audit.Actor, job_id: uuid.UUID, params: ImportParams
) -> Job:
    """The queued job row and the event that starts it, in the request's transaction."""
    job = Job(
        id=job_id,
        kind=uploads.JOB_KIND,
        status="queued",
        params=params.model_dump(mode="json"),
        created_by=actor.name,
    )
    session.add(job)
    await session.flush()
    await session.refresh(job)
    await emit(session, JOBS_REQUESTED, [job.id], [], kind=uploads.JOB_KIND)
    after = JobRead.model_validate(job).model_dump(mode="json")
    await audit.record(session, actor, "create", "job", job.id, None, after)
    return job


async def error_report(
    session: AsyncSession, settings: Settings, job_id: uuid.UUID
) -> tuple[Path, str]:
    """The error report of a finished import job and the name to download it as."""
    job = await session.get(Job, job_id)
    if job is None or job.kind != uploads.JOB_KIND:
        raise NotFound(f"Import job {job_id} does not exist.")
    if job.status != "succeeded":
        raise NotFound(
            f"Import job {job_id} is {job.status}: its error report comes when it succeeds."
        )
    if not (job.result or {}).get("has_error_report"):
        raise NotFound(f"Import job {job_id} has no error report: no row failed.")
    path = uploads.error_report_path(settings, job_id, ImportFormat(job.params["format"]))
    if not await asyncio.to_thread(path.is_file):
        raise NotFound(
            f"The error report of import job {job_id} is not in this server's import directory."
        )
    name = job.params.get("filename") or f"import-{job_id}"
    return path, f"{name}.errors.csv"

"""`POST /v1/imports`: import the uploaded file with the engine `retention import` uses,
reporting progress on the job row.

arq may run the job again after a worker dies. The file's `import_runs` checkpoint makes a
rerun continue after the last committed batch; a run that finished before the job was marked
succeeded is recognised by its path (each upload has a directory of its own) and only
reported, so no row is imported twice."""

import asyncio
import logging
import uuid
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arq import Retry
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.db import session_scope
from services.core.errors import Conflict, DomainError
from services.core.imports import runs, uploads
from services.core.imports.reader import Position
from services.core.imports.report import report_path
from services.core.imports.service import (
    DEFAULT_BATCH_SIZE,
    ImportFormat,
    ImportOptions,
    import_file,
)
from services.core.logs import bind_request_ids
from services.core.models import Job
from services.core.models.imports import ImportKind, ImportRun, ImportStatus
from services.scorer.jobs.scoring import FINISHED, finish

log = logging.getLogger(__name__)

RUN_IMPORT = "run_import"
MAX_TRIES = 10
"""arq's limit on starts of the job. A worker stopped mid-import (a deploy, a crash) leaves the
job to be started again, and each start counts, so a long import gets room for several."""
ERROR_TRIES = 3
"""An attempt that fails is retried (continuing after its checkpoint) while fewer than this
many starts were made; then the job fails."""
BATCH_SIZE = DEFAULT_BATCH_SIZE
PROGRESS_SECONDS = 1.0
"""The job row is updated at most this often, and after each batch otherwise."""


class JobProgress:
    """The engine's Observer: keeps the latest counts, which `write_forever` copies to the job
    row. `done` is the rows committed (all attempts), `progress` the share of the file's bytes
    they end at."""

    def __init__(self) -> None:
        self.done = 0
        self.progress = 0.0
        self.size = 1
        self.run: runs.Run | None = None
        self.changed = asyncio.Event()

    def started(self, run: runs.Run, size: int, start: Position) -> None:
        self.run = run
        self.size = max(size, 1)
        self._update(run.rows, start.offset)

    def committed(self, batch: runs.Progress) -> None:
        if self.run is not None:
            self._update(self.run.rows, batch.end.offset)

    def _update(self, rows: int, offset: int) -> None:
        self.done = rows
        self.progress = min(1.0, offset / self.size)
        self.changed.set()

    async def write(
        self, sessionmaker: async_sessionmaker[AsyncSession], job_id: uuid.UUID
    ) -> None:
        """Copy the counts to the job row while it runs; a failure is logged, not raised."""
        try:
            async with session_scope(sessionmaker) as session:
                await session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == "running")
                    .values(done=self.done, progress=self.progress)
                )
        except Exception:
            log.warning("could not record the progress of import job %s", job_id, exc_info=True)

    async def write_forever(
        self, sessionmaker: async_sessionmaker[AsyncSession], job_id: uuid.UUID
    ) -> None:
        while True:
            await self.changed.wait()
            self.changed.clear()
            await self.write(sessionmaker, job_id)
            await asyncio.sleep(PROGRESS_SECONDS)


async def _start(
    sessionmaker: async_sessionmaker[AsyncSession], job_id: uuid.UUID
) -> dict[str, Any] | None:
    """Mark the job running; its params, or None when it is finished or gone."""
    async with session_scope(sessionmaker) as session:
        job = await session.get(Job, job_id, with_for_update=True)
        if job is None or job.status in FINISHED:
            return None
        job.status = "running"
        job.started_at = job.started_at or datetime.now(UTC)
        return dict(job.params)


async def _finish(
    sessionmaker: async_sessionmaker[AsyncSession], job_id: uuid.UUID, status: str, **values: Any
) -> None:
    async with session_scope(sessionmaker) as session:
        await finish(session, str(job_id), status, **values)


async def _finished_run(
    sessionmaker: async_sessionmaker[AsyncSession], kind: ImportKind, path: Path
) -> ImportRun | None:
    """A run of this upload that finished: the job stopped after the import and before it was
    marked succeeded."""
    query = (
        select(ImportRun)
        .where(
            ImportRun.kind == kind,
            ImportRun.path == str(path.resolve()),
            ImportRun.status == ImportStatus.finished,
        )
        .order_by(ImportRun.started_at.desc())
        .limit(1)
    )
    async with sessionmaker() as session:
        return (await session.scalars(query)).first()


def _result(run: ImportRun, report: Path) -> dict[str, Any]:
    return {
        "run_id": str(run.id),
        "rows": run.rows,
        "imported": run.imported,
        "duplicates": run.duplicates,
        "failed": run.failed,
        "recompute_job_id": None if run.recompute_job_id is None else str(run.recompute_job_id),
        "has_error_report": run.failed > 0 and report.is_file(),
    }


async def _import(
    ctx: dict[str, Any], job_id: uuid.UUID, params: dict[str, Any], path: Path
) -> ImportRun:
    """Import (or resume importing) the upload, copying progress to the job row meanwhile; the
    finished run."""
    settings: Settings = ctx["settings"]
    sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
    kind = ImportKind(params["kind"])
    as_of = params.get("as_of")
    options = ImportOptions(
        format=ImportFormat(params["format"]),
        batch_size=BATCH_SIZE,
        recompute=bool(params.get("recompute", True)),
        as_of=None if as_of is None else datetime.fromisoformat(as_of),
        source_name=params.get("filename") or path.name,
    )
    progress = JobProgress()
    writer = asyncio.create_task(progress.write_forever(sessionmaker, job_id))
    try:
        result = await import_file(settings, kind, path, options, progress)
    finally:
        writer.cancel()
        with suppress(asyncio.CancelledError):
            await writer
        if progress.run is not None:  # what the last batches committed, however it ended
            await progress.write(sessionmaker, job_id)
    async with sessionmaker() as session:
        run = await session.get(ImportRun, result.run_id)
    assert run is not None
    return run


def _retry_delay(job_try: int) -> float:
    return float(min(5 * 2 ** (job_try - 1), 60))


async def run_import(ctx: dict[str, Any], job_id: str, request_id: str | None = None) -> str:
    """Import the file uploaded for this job; the job ends `succeeded` with the counts, or
    `failed` with why. Safe to run again at any point."""
    bind_request_ids([request_id])
    sessionmaker = ctx["sessionmaker"]
    settings: Settings = ctx["settings"]
    job_uuid = uuid.UUID(job_id)
    params = await _start(sessionmaker, job_uuid)
    if params is None:
        return "skipped"
    kind = ImportKind(params["kind"])
    path = uploads.upload_path(settings, job_uuid, ImportFormat(params["format"]))
    try:
        run = await _finished_run(sessionmaker, kind, path)
        if run is None:
            if not await asyncio.to_thread(path.is_file):
                message = (
                    f"The uploaded file is not in this worker's import directory ({path}): the "
                    "API and the workers must share RETENTION_IMPORT_DIR."
                )
                await _finish(sessionmaker, job_uuid, "failed", errors=[{"message": message}])
                return "failed"
            run = await _import(ctx, job_uuid, params, path)
    except Conflict as exc:
        # The file's lock is held: an earlier attempt of this job whose connection the
        # database has not let go of yet. Wait for it.
        job_try = int(ctx.get("job_try", 1))
        if job_try < ERROR_TRIES:
            raise Retry(defer=_retry_delay(job_try)) from exc
        await _finish(sessionmaker, job_uuid, "failed", errors=[{"message": str(exc)}])
        return "failed"
    except DomainError as exc:  # the file does not fit its kind: a retry would not help
        message = str(exc).replace(path.name, params.get("filename") or path.name)[:2000]
        await _finish(sessionmaker, job_uuid, "failed", errors=[{"message": message}])
        return "failed"
    except Exception as exc:
        # Batches committed so far stay, with their checkpoint: a retry continues after them.
        job_try = int(ctx.get("job_try", 1))
        if job_try < ERROR_TRIES:
            log.warning("import job %s try %d failed", job_id, job_try, exc_info=True)
            raise Retry(defer=_retry_delay(job_try)) from exc
        message = f"{type(exc).__name__}: {exc}"[:500]
        await _finish(sessionmaker, job_uuid, "failed", errors=[{"message": message}])
        raise
    result = await asyncio.to_thread(_result, run, report_path(path))
    await _finish(sessionmaker, job_uuid, "succeeded", result=result, done=run.rows, total=run.rows)
    # The upload is no longer needed (a rerun finds the finished run); its report stays.
    await asyncio.to_thread(path.unlink, True)
    log.info("import job %s imported %d of %d rows", job_id, run.imported, run.rows, extra=result)
    return "succeeded"

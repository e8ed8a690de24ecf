"""Rebuilding the report tables as a job: after every recompute, and on request."""

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from services.core.db import session_scope
from services.core.logs import bind_request_ids
from services.core.models import Job
from services.core.reports.refresh import refresh_reports
from services.scorer.jobs.scoring import FINISHED, finish

log = logging.getLogger(__name__)

REFRESH_REPORTS = "refresh_reports"


async def run_report_refresh(
    ctx: dict[str, Any], job_id: str, request_id: str | None = None
) -> str:
    """Safe to run twice: a rerun rebuilds the same tables from the same data."""
    bind_request_ids([request_id])
    sessionmaker = ctx["sessionmaker"]
    async with session_scope(sessionmaker) as session:
        job = await session.get(Job, uuid.UUID(job_id), with_for_update=True)
        if job is None or job.status in FINISHED:
            return "skipped"
        job.status, job.started_at = "running", datetime.now(UTC)
    try:
        async with session_scope(sessionmaker) as session:
            done = await refresh_reports(session)
    except Exception as exc:
        async with session_scope(sessionmaker) as session:
            await finish(session, job_id, "failed", errors=[{"message": str(exc)[:500]}])
        raise
    result = {
        "as_of": done.as_of.isoformat(),
        "segments": done.segments,
        "seconds": round(done.seconds, 2),
    }
    async with session_scope(sessionmaker) as session:
        await finish(session, job_id, "succeeded", result=result)
    log.info("report refresh job %s done", job_id, extra=result)
    return "succeeded"

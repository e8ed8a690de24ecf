"""The job the relay enqueues: a batch of outbox events becomes one rescoring of the customers
they touch. arq may run it more than once; rescoring recomputes from stored data, so a rerun
changes nothing."""

import logging
import uuid
from typing import Any

from arq import Retry
from sqlalchemy import text

from services.core import events, metrics
from services.core.imports import uploads
from services.core.imports.runs import RECOMPUTE
from services.core.logs import bind_request_ids
from services.core.reports.refresh import JOB_KIND as REPORT_REFRESH
from services.scorer.jobs.imports import RUN_IMPORT
from services.scorer.jobs.reports import REFRESH_REPORTS
from services.scorer.jobs.scoring import RUN_RECOMPUTE, rescore_customers

log = logging.getLogger(__name__)

PROCESS_EVENTS = "process_events"
MAX_TRIES = 8

_JOBS = text("""
SELECT DISTINCT j AS job_id, e.payload->>'kind' AS kind, e.payload->>'request_id' AS request_id
FROM outbox_events e, jsonb_array_elements_text(e.payload->'ids') AS j
WHERE e.id = ANY(:ids) AND e.type = :type
""")

JOB_FUNCTIONS = {
    RECOMPUTE: RUN_RECOMPUTE,
    uploads.JOB_KIND: RUN_IMPORT,
    REPORT_REFRESH: REFRESH_REPORTS,
}
"""The arq function that runs each kind of requested job."""

# With the customers: when each event naming some was written (for the scoring lag) and the
# requests behind the events (for the log lines).
_CUSTOMERS = text("""
WITH e AS MATERIALIZED (SELECT created_at, payload FROM outbox_events WHERE id = ANY(:ids))
SELECT (SELECT count(*) FROM e) AS events,
  (SELECT coalesce(array_agg(DISTINCT c), '{}')
   FROM e, jsonb_array_elements_text(e.payload->'customer_ids') AS c) AS customer_ids,
  (SELECT coalesce(array_agg(created_at), '{}') FROM e
   WHERE e.payload->'customer_ids' <> '[]') AS created,
  (SELECT coalesce(array_agg(DISTINCT e.payload->>'request_id'), '{}') FROM e
   WHERE e.payload ? 'request_id') AS request_ids
""")


async def start_job(
    ctx: dict[str, Any], job_id: str, kind: str | None = None, request_id: str | None = None
) -> None:
    """Enqueue a requested job under an id of its own, so a redelivered event starts it once;
    it names the request that asked for it, if any, in its log lines."""
    function = JOB_FUNCTIONS.get(kind or RECOMPUTE)
    if function is None:
        log.error("job %s has a kind no worker function runs: %s", job_id, kind)
        return
    queue = ctx["settings"].queue_name
    await ctx["redis"].enqueue_job(
        function,
        job_id,
        request_id=request_id,
        _job_id=f"{queue}:job:{job_id}",
        _queue_name=queue,
    )


def retry_delay(job_try: int) -> float:
    """Seconds before the next try: 1, 2, 4 … capped at a minute."""
    return float(min(2 ** (job_try - 1), 60))


async def process_events(ctx: dict[str, Any], event_ids: list[int]) -> dict[str, int]:
    """Rescore every customer named by these events; events no longer stored are skipped."""
    try:
        async with ctx["sessionmaker"]() as session:
            row = (await session.execute(_CUSTOMERS, {"ids": event_ids})).one()
            params = {"ids": event_ids, "type": events.JOBS_REQUESTED}
            jobs = (await session.execute(_JOBS, params)).all()
        bind_request_ids(row.request_ids)
        for job in jobs:
            await start_job(ctx, job.job_id, job.kind, job.request_id)
        customer_ids = sorted(uuid.UUID(c) for c in row.customer_ids)
        rescored = await rescore_customers(ctx, customer_ids) if customer_ids else 0
        metrics.scoring_lag(row.created)
    except Exception as exc:
        # arq fails a job for good on an ordinary exception; a database hiccup must not drop
        # events already marked relayed, so failures are retried with backoff. The last try
        # fails with the real error; any later rescoring from stored data repairs them.
        job_try = int(ctx.get("job_try", 1))
        if job_try >= MAX_TRIES:
            raise
        log.exception("process_events try %d failed for %d events", job_try, len(event_ids))
        raise Retry(defer=retry_delay(job_try)) from exc
    return {"events": int(row.events), "customers": len(customer_ids), "rescored": rescored}

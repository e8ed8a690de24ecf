"""Import runs: the checkpoint every committed batch writes, finding a run again to resume it,
and the recompute requested when it finishes."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from services.core import events
from services.core.errors import Conflict
from services.core.imports import journal
from services.core.imports.reader import Position
from services.core.imports.values import dump_json
from services.core.models.base import new_id
from services.core.models.imports import ImportKind, ImportStatus

RECOMPUTE = "recompute"
NAMED_CUSTOMERS_LIMIT = 50_000
"""Beyond this many customers a run asks for a recompute of everyone: cheaper for the worker
(id ranges instead of id lists), and value tiers are only assigned by a full recompute."""


@dataclass(frozen=True)
class FileIdentity:
    path: Path
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> "FileIdentity":
        resolved = path.resolve()
        stat = resolved.stat()
        return cls(resolved, stat.st_size, stat.st_mtime_ns)


@dataclass
class Run:
    id: uuid.UUID
    started_at: datetime
    resumed: bool
    committed: Position
    report_size: int
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    failed: int = 0
    all_customers: bool = False


_LOCK = "SELECT pg_try_advisory_lock(hashtextextended($1, 0))"

_LATEST = """
SELECT id, started_at, size, mtime_ns, format, committed_line, committed_offset, report_size,
  rows, imported, duplicates, failed, all_customers
FROM import_runs WHERE kind = $1 AND path = $2 AND status = 'running'
ORDER BY started_at DESC LIMIT 1
"""

_CHECKPOINT = """
WITH merged AS (
  SELECT ARRAY(SELECT DISTINCT u FROM unnest(r.customer_ids || $9::uuid[]) AS u) AS ids
  FROM import_runs r WHERE r.id = $1
)
UPDATE import_runs r SET committed_line = $2, committed_offset = $3, report_size = $4,
  rows = r.rows + $5, imported = r.imported + $6, duplicates = r.duplicates + $7,
  failed = r.failed + $8,
  all_customers = r.all_customers OR cardinality(m.ids) > $10,
  customer_ids = CASE WHEN r.all_customers OR cardinality(m.ids) > $10 THEN '{}' ELSE m.ids END,
  updated_at = now()
FROM merged m WHERE r.id = $1
RETURNING r.all_customers
"""


async def open_run(
    conn: asyncpg.Connection, kind: ImportKind, file: FileIdentity, format_: str
) -> Run:
    """The unfinished run of this very file (same path, size and modification time) to resume,
    or a new one. A session lock on the path keeps a second import of it from running meanwhile;
    it lasts as long as `conn`."""
    if not await conn.fetchval(_LOCK, f"retention-import:{kind}:{file.path}"):
        raise Conflict(f"Another import of {file.path} as {kind} is running.")
    latest = await conn.fetchrow(_LATEST, kind.value, str(file.path))
    if latest is not None and (latest["size"], latest["mtime_ns"], latest["format"]) == (
        file.size,
        file.mtime_ns,
        format_,
    ):
        return Run(
            id=latest["id"],
            started_at=latest["started_at"],
            resumed=True,
            committed=Position(latest["committed_line"], latest["committed_offset"]),
            report_size=latest["report_size"],
            rows=latest["rows"],
            imported=latest["imported"],
            duplicates=latest["duplicates"],
            failed=latest["failed"],
            all_customers=latest["all_customers"],
        )
    async with conn.transaction():
        # The file changed since: what was imported of it stays, the rest cannot be resumed.
        await conn.execute(
            "UPDATE import_runs SET status = $3, finished_at = now(), updated_at = now() "
            "WHERE kind = $1 AND path = $2 AND status = 'running'",
            kind.value,
            str(file.path),
            ImportStatus.abandoned.value,
        )
        row = await conn.fetchrow(
            "INSERT INTO import_runs (id, kind, path, size, mtime_ns, format) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, started_at",
            new_id(),
            kind.value,
            str(file.path),
            file.size,
            file.mtime_ns,
            format_,
        )
    return Run(row["id"], row["started_at"], resumed=False, committed=Position(), report_size=0)


@dataclass(frozen=True)
class Progress:
    """A committed batch's share of the counts, and where it ends."""

    end: Position
    report_size: int
    rows: int
    imported: int
    duplicates: int
    failed: int
    customer_ids: list[uuid.UUID]
    first_line: int


async def checkpoint(conn: asyncpg.Connection, run: Run, kind: ImportKind, batch: Progress) -> None:
    """Record a batch in the transaction that writes it, with its audit event: the batch and
    its checkpoint commit together or not at all."""
    customers = [] if run.all_customers else batch.customer_ids
    run.all_customers = await conn.fetchval(
        _CHECKPOINT,
        run.id,
        batch.end.line,
        batch.end.offset,
        batch.report_size,
        batch.rows,
        batch.imported,
        batch.duplicates,
        batch.failed,
        customers,
        NAMED_CUSTOMERS_LIMIT,
    )
    await journal.audit(
        conn,
        "import",
        f"{kind.value.removesuffix('s')}_import",
        run.id,
        {
            "lines": [batch.first_line, batch.end.line],
            "rows": batch.rows,
            "imported": batch.imported,
            "duplicates": batch.duplicates,
            "failed": batch.failed,
        },
    )
    run.committed = batch.end
    run.report_size = batch.report_size
    run.rows += batch.rows
    run.imported += batch.imported
    run.duplicates += batch.duplicates
    run.failed += batch.failed


async def finish(
    conn: asyncpg.Connection, run: Run, recompute: bool, as_of: datetime
) -> uuid.UUID | None:
    """Mark the run finished and, when asked and it wrote any customer, queue a recompute of
    those customers (or of everyone, past the limit) as of `as_of`, the way
    `POST /v1/scoring/recompute` does: a `jobs` row and its `jobs.requested` event."""
    async with conn.transaction():
        stored = await conn.fetchrow(
            "SELECT customer_ids, all_customers FROM import_runs WHERE id = $1 FOR UPDATE", run.id
        )
        job_id = None
        if recompute and (stored["all_customers"] or stored["customer_ids"]):
            named = (
                None if stored["all_customers"] else sorted(str(c) for c in stored["customer_ids"])
            )
            job_id = await _queue_recompute(conn, run, named, as_of)
        await conn.execute(
            "UPDATE import_runs SET status = $2, finished_at = now(), updated_at = now(), "
            "recompute_job_id = $3 WHERE id = $1",
            run.id,
            ImportStatus.finished.value,
            job_id,
        )
    return job_id


async def _queue_recompute(
    conn: asyncpg.Connection, run: Run, customer_ids: list[str] | None, as_of: datetime
) -> uuid.UUID:
    job_id = new_id()
    params = {
        "as_of": as_of.isoformat(),
        "customer_ids": customer_ids,
        "reason": "import",
        "import_run_id": str(run.id),
    }
    row = await conn.fetchrow(
        "INSERT INTO jobs (id, kind, status, params, created_by) "
        "VALUES ($1, $2, 'queued', $3::jsonb, $4) RETURNING id, kind, status, created_at",
        job_id,
        RECOMPUTE,
        dump_json(params),
        journal.ACTOR,
    )
    await journal.emit(conn, events.JOBS_REQUESTED, [job_id], [], kind=RECOMPUTE)
    after = {
        "id": str(job_id),
        "kind": row["kind"],
        "status": row["status"],
        "params": params,
        "created_by": journal.ACTOR,
        "created_at": row["created_at"].isoformat(),
    }
    await journal.audit(conn, "create", "job", job_id, after)
    return job_id

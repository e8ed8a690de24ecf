"""The `run_import` job behind `POST /v1/imports`: started by its event, reporting progress,
and safe to run again after a crash at any point."""

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import ArqRedis, Retry
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import Settings
from services.core.imports import runs
from services.scorer.jobs import imports
from services.scorer.jobs.events import process_events
from services.scorer.jobs.imports import run_import
from tests.api.customer_rows import insert_customer
from tests.api.import_uploads import job_id_of, post_import, uploaded, use_import_dir
from tests.helpers import count_rows
from tests.scorer.workers import run_burst


class Crash(BaseException):
    """The worker dies: nothing in the job gets to handle it."""


def history(rows: int) -> bytes:
    """Interactions without external_id (a duplicate could not be told apart); rows 3 and 8
    name no customer."""
    lines = ["customer_external_ref,kind,occurred_at"]
    for n in range(rows):
        customer = "NOBODY" if n in (2, 7) else f"C-{n % 2 + 1}"
        lines.append(f"{customer},visit,2026-03-01T10:{n:02d}:00Z")
    return "".join(f"{line}\n" for line in lines).encode()


@pytest.fixture
async def import_settings(
    app: FastAPI,
    settings: Settings,
    engine: AsyncEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    await insert_customer(engine, external_ref="C-1")
    await insert_customer(engine, external_ref="C-2")
    return use_import_dir(app, settings, tmp_path / "imports", monkeypatch)


@pytest.fixture
def ctx(app: FastAPI, import_settings: Settings) -> dict[str, Any]:
    return {"settings": import_settings, "sessionmaker": app.state.sessionmaker, "job_try": 1}


async def job_row(engine: AsyncEngine, job_id: uuid.UUID) -> dict[str, Any]:
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id})
        return dict(result.mappings().one())


async def test_a_requested_import_runs_on_the_worker(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    import_settings: Settings,
    arq_redis: ArqRedis,
    relay: Callable[..., Awaitable[int]],
) -> None:
    job_id = job_id_of(await post_import(client, "interactions", "h.csv", history(10)))
    assert await relay() == 1
    worker = await run_burst(import_settings)
    assert worker.jobs_failed == 0
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "succeeded", job
    assert (job["result"]["imported"], job["result"]["failed"]) == (8, 2)
    assert await count_rows(engine, "interactions") == 8


async def test_requested_jobs_start_the_function_of_their_kind(
    app: FastAPI,
    client: httpx.AsyncClient,
    import_settings: Settings,
    arq_redis: ArqRedis,
    relay: Callable[..., Awaitable[int]],
) -> None:
    job_id = job_id_of(await post_import(client, "interactions", "h.csv", history(3)))
    recompute = await client.post("/v1/scoring/recompute", json={})
    assert recompute.status_code == 202, recompute.text
    ctx = {"sessionmaker": app.state.sessionmaker, "redis": arq_redis, "settings": import_settings}
    await process_events(ctx, [1, 2])
    queued = await arq_redis.queued_jobs(queue_name=import_settings.queue_name)
    assert sorted((job.function, job.args[0]) for job in queued) == sorted(
        [("run_import", str(job_id)), ("run_recompute", recompute.json()["id"])]
    )


async def test_a_crashed_import_resumes_from_its_checkpoint(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    ctx: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content = history(10)
    job_id = job_id_of(await post_import(client, "interactions", "h.csv", content))
    monkeypatch.setattr(imports, "BATCH_SIZE", 2)
    seen: list[runs.Progress] = []
    committed = imports.JobProgress.committed

    def crash_after_two(self: imports.JobProgress, batch: runs.Progress) -> None:
        committed(self, batch)
        seen.append(batch)
        if len(seen) == 2:
            raise Crash

    with monkeypatch.context() as patched:
        patched.setattr(imports.JobProgress, "committed", crash_after_two)
        with pytest.raises(Crash):
            await run_import(ctx, str(job_id))

    # Two batches committed (lines 2-5): three rows, and the failure of line 4.
    job = await job_row(engine, job_id)
    assert job["status"] == "running"
    end = len(b"".join(content.splitlines(keepends=True)[:5]))
    assert (job["done"], job["progress"]) == (4, end / len(content))
    assert await count_rows(engine, "interactions") == 3

    assert await run_import(ctx, str(job_id)) == "succeeded"

    job = await job_row(engine, job_id)
    assert (job["status"], job["done"], job["progress"]) == ("succeeded", 10, 1.0)
    assert (job["result"]["rows"], job["result"]["imported"], job["result"]["failed"]) == (10, 8, 2)
    assert await count_rows(engine, "interactions") == 8
    stored = await count_rows(engine, "(SELECT DISTINCT occurred_at FROM interactions) t")
    assert stored == 8
    assert await count_rows(engine, "import_runs") == 1
    assert await run_import(ctx, str(job_id)) == "skipped"
    assert await count_rows(engine, "interactions") == 8


async def test_an_import_that_finished_before_its_job_was_marked_is_not_run_again(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    ctx: dict[str, Any],
    import_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = job_id_of(await post_import(client, "interactions", "h.csv", history(6)))
    finish = imports._finish

    async def crash_on_success(*args: Any, **values: Any) -> None:
        if args[2] == "succeeded":
            raise Crash
        await finish(*args, **values)

    with monkeypatch.context() as patched:
        patched.setattr(imports, "_finish", crash_on_success)
        with pytest.raises(Crash):
            await run_import(ctx, str(job_id))
    assert (await job_row(engine, job_id))["status"] == "running"
    async with engine.connect() as conn:
        run_id = (await conn.execute(text("SELECT id FROM import_runs"))).scalar_one()
    assert await count_rows(engine, "import_runs", "status = 'finished'") == 1
    assert await count_rows(engine, "interactions") == 5

    assert await run_import(ctx, str(job_id)) == "succeeded"

    result = (await job_row(engine, job_id))["result"]
    assert result["run_id"] == str(run_id)
    assert (result["rows"], result["imported"], result["failed"]) == (6, 5, 1)
    assert result["has_error_report"] is True
    assert result["recompute_job_id"] is not None
    assert await count_rows(engine, "import_runs") == 1
    assert await count_rows(engine, "interactions") == 5
    assert await count_rows(engine, "jobs", "kind = 'recompute'") == 1
    assert uploaded(import_settings.import_dir) == [str(job_id), f"{job_id}/upload.csv.errors.csv"]


async def test_an_upload_the_worker_cannot_see_fails_the_job(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    import_settings: Settings,
    tmp_path: Path,
) -> None:
    job_id = job_id_of(await post_import(client, "interactions", "h.csv", history(3)))
    elsewhere = import_settings.model_copy(update={"import_dir": tmp_path / "elsewhere"})
    ctx = {"settings": elsewhere, "sessionmaker": app.state.sessionmaker, "job_try": 1}
    assert await run_import(ctx, str(job_id)) == "failed"
    job = await job_row(engine, job_id)
    assert job["status"] == "failed"
    assert "RETENTION_IMPORT_DIR" in job["errors"][0]["message"]
    assert await count_rows(engine, "import_runs") == 0


async def test_a_failing_database_is_retried_then_fails_the_job(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    ctx: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = job_id_of(await post_import(client, "interactions", "h.csv", history(3)))

    async def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("the database is down")

    monkeypatch.setattr(imports, "import_file", unreachable)
    with pytest.raises(Retry):
        await run_import(ctx, str(job_id))
    assert (await job_row(engine, job_id))["status"] == "running"
    with pytest.raises(ConnectionRefusedError):
        await run_import({**ctx, "job_try": imports.ERROR_TRIES}, str(job_id))
    job = await job_row(engine, job_id)
    assert job["status"] == "failed"
    assert "the database is down" in job["errors"][0]["message"]


async def test_a_file_the_api_could_not_judge_fails_its_job_when_refused(
    client: httpx.AsyncClient, engine: AsyncEngine, ctx: dict[str, Any]
) -> None:
    """A first line too long for the API to read fits no kind: the worker refuses the file."""
    content = b"x" * (2**20 + 10) + b"\nC-1,visit,2026-03-01T10:00:00Z\n"
    job_id = job_id_of(await post_import(client, "interactions", "wide.csv", content))
    assert await run_import(ctx, str(job_id)) == "failed"
    job = await job_row(engine, job_id)
    assert job["status"] == "failed"
    assert job["errors"][0]["message"].startswith("wide.csv: ")
    assert "field larger than field limit" in job["errors"][0]["message"]
    assert await count_rows(engine, "interactions") == 0

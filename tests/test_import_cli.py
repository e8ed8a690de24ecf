"""`retention import` as a subprocess: its summary, the error report and its exit status."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import Settings
from tests.helpers import count_rows

RETENTION = Path(sys.executable).with_name("retention")


async def _import(settings: Settings, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "DATABASE_URL": settings.require_database_url(),
        "REDIS_URL": settings.require_redis_url(),
        "RETENTION_QUEUE_NAME": settings.queue_name,
    }
    # cwd away from the repository, so no `.env` there can change the settings under test.
    return await asyncio.to_thread(
        subprocess.run,
        [str(RETENTION), "import", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_import_reports_counts_and_exits_2_when_rows_fail(
    settings: Settings, app: FastAPI, engine: AsyncEngine, tmp_path: Path
) -> None:
    channels = tmp_path / "channels.csv"
    channels.write_text("external_ref,name,type\nCH-1,华东分销,distributor\n", encoding="utf-8")
    result = await _import(settings, tmp_path, "channels", "channels.csv")
    assert result.returncode == 0, result.stderr
    assert "imported 1   skipped as duplicate 0   failed 0" in result.stdout
    assert "error report" not in result.stdout

    customers = tmp_path / "people.data"
    customers.write_text(
        '{"external_ref": "C-1", "name": "张敏", "channel_external_ref": "CH-1"}\n'
        '{"external_ref": "C-2", "name": "王芳", "value_tier": "Z"}\n',
        encoding="utf-8",
    )
    result = await _import(
        settings, tmp_path, "customers", "people.data", "--format", "ndjson", "--no-recompute"
    )
    assert result.returncode == 2, result.stderr
    assert "2 rows" in result.stdout
    assert "imported 1   skipped as duplicate 0   failed 1" in result.stdout
    report = tmp_path / "people.data.errors.csv"
    assert f"error report: {report.name}" in result.stdout.replace(str(tmp_path) + "/", "")
    assert report.read_text(encoding="utf-8-sig").splitlines() == [
        "file,line,field,reason",
        "people.data,2,value_tier,\"'Z' is not one of A, B, C\"",
    ]
    assert await count_rows(engine, "customers") == 1
    assert await count_rows(engine, "jobs") == 0

    interactions = tmp_path / "interactions.csv"
    interactions.write_text(
        "customer_external_ref,kind,occurred_at\nC-1,visit,2026-03-01T10:00:00Z\n"
    )
    result = await _import(
        settings, tmp_path, "interactions", "interactions.csv", "--as-of", "2026-06-30T00:00:00Z"
    )
    assert result.returncode == 0, result.stderr
    assert "recompute job" in result.stdout
    assert await count_rows(engine, "jobs", "params->>'as_of' = '2026-06-30T00:00:00+00:00'") == 1


async def test_a_file_that_does_not_fit_exits_1_and_writes_nothing(
    settings: Settings, app: FastAPI, engine: AsyncEngine, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("external_ref,name\nC-1,Zhang\n")
    result = await _import(settings, tmp_path, "interactions", "wrong.csv")
    assert result.returncode == 1
    assert "external_ref is not a column of interactions" in result.stderr
    assert await count_rows(engine, "import_runs") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrong.csv"]

    result = await _import(settings, tmp_path, "interactions", "wrong.csv", "--as-of", "tomorrow")
    assert result.returncode == 2  # a usage error, reported by the command line parser
    assert "--as-of" in result.stderr

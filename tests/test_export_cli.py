"""`retention export` as a subprocess: the file it writes is the API's export, it reads back to
the rows the lists show, and bad options write nothing."""

import asyncio
import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import Settings
from tests.api.customer_rows import insert_customer
from tests.api.test_exports import (
    COLUMNS,
    HOUR,
    T0,
    agrees,
    customers_with_scores,
    flat,
    insert_interactions,
)
from tests.helpers import walk

RETENTION = Path(sys.executable).with_name("retention")


async def _export(settings: Settings, cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "DATABASE_URL": settings.require_database_url(),
        "REDIS_URL": settings.require_redis_url(),
    }
    # cwd away from the repository, so no `.env` there can change the settings under test.
    return await asyncio.to_thread(
        subprocess.run,
        [str(RETENTION), "export", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _ndjson(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


async def test_the_file_is_the_api_export_and_reads_back_to_the_list(
    settings: Settings, client: httpx.AsyncClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    await customers_with_scores(engine)
    result = await _export(
        settings, tmp_path, "customers", "--owner", "li", "--output", "li.csv", "--chunk-size", "1"
    )
    assert result.returncode == 0, result.stderr
    stderr = result.stderr.decode()
    assert "Exported 2 customers as csv to li.csv" in stderr
    assert "rows/s" in stderr
    assert result.stdout == b""
    written = (tmp_path / "li.csv").read_bytes()
    api = await client.get("/v1/exports/customers", params={"owner": "li"})
    assert written == api.content

    result = await _export(
        settings, tmp_path, "customers", "--owner", "li", "-o", "li.jsonl", "--chunk-size", "1"
    )
    assert result.returncode == 0, result.stderr
    objects = _ndjson((tmp_path / "li.jsonl").read_bytes())  # ndjson from the extension
    listed = await walk(client, "/v1/customers", sort="created_at", owner="li")
    assert objects == [flat(item) for item in listed]
    with (tmp_path / "li.csv").open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == COLUMNS["customers"]
    for cells, obj in zip(rows, objects, strict=True):
        agrees(cells, obj)
    assert sorted(tmp_path.iterdir()) == [
        tmp_path / "li.csv",
        tmp_path / "li.jsonl",
    ]  # no leftovers


async def test_stdout_and_the_filters_of_each_kind(
    settings: Settings, client: httpx.AsyncClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    ids = await customers_with_scores(engine)
    await insert_interactions(
        engine,
        [
            {"customer_id": ids["a"], "kind": kind, "occurred_at": T0 + i * HOUR}
            for i, kind in enumerate(["visit", "call", "call", "email"])
        ],
    )
    result = await _export(
        settings, tmp_path, "interactions", "--format", "ndjson", "--kind", "call",
        "--since", (T0 + 2 * HOUR).isoformat(), "--chunk-size", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = await walk(
        client, "/v1/interactions", sort="occurred_at", kind="call",
        occurred_after=(T0 + 2 * HOUR).isoformat(),
    )  # fmt: skip
    assert len(expected) == 1
    assert _ndjson(result.stdout) == expected
    assert "Exported 1 interactions as ndjson to stdout" in result.stderr.decode()

    result = await _export(settings, tmp_path, "scores", "--band", "green", "--format", "ndjson")
    assert result.returncode == 0, result.stderr
    assert [r["customer_id"] for r in _ndjson(result.stdout)] == [str(ids["b"])]

    result = await _export(settings, tmp_path, "alerts", "--status", "open", "--status", "resolved")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == ",".join(COLUMNS["alerts"]) + "\r\n"


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["customers", "--tier", "Z"], "--tier"),
        (["customers", "--score-min", "70", "--score-max", "40"], "--score-max"),
        (["scores", "--created-after", "2026-03-01T00:00Z", "--created-before", "2026-02-01T00:00Z"], "--created-before"),
        (["customers", "--created-after", "2026-03-01"], "--created-after"),
        (["interactions", "--since", "2026-03-01T09:00:00"], "--since"),
        (["interactions", "--customer-id", "nope"], "--customer-id"),
        (["alerts", "--status", "asleep"], "--status"),
        (["alerts", "--format", "xml"], "--format"),
    ],
)  # fmt: skip
async def test_bad_options_exit_2_and_write_nothing(
    settings: Settings, engine: AsyncEngine, tmp_path: Path, args: list[str], option: str
) -> None:
    await insert_customer(engine, value_tier="A")
    result = await _export(settings, tmp_path, *args, "--output", "out.csv")
    assert result.returncode == 2, result.stderr
    assert option in result.stderr.decode()
    assert list(tmp_path.iterdir()) == []


async def test_a_file_whose_format_cannot_be_told_needs_format(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    await insert_customer(engine)
    result = await _export(settings, tmp_path, "customers", "--output", "customers.txt")
    assert result.returncode == 2
    assert "--format" in result.stderr.decode()
    assert list(tmp_path.iterdir()) == []
    result = await _export(
        settings, tmp_path, "customers", "--output", "customers.txt", "--format", "ndjson"
    )
    assert result.returncode == 0, result.stderr
    assert len(_ndjson((tmp_path / "customers.txt").read_bytes())) == 1


async def test_an_output_in_a_missing_directory_is_refused(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    await insert_customer(engine)
    result = await _export(settings, tmp_path, "customers", "--output", "missing/customers.csv")
    assert result.returncode == 2
    assert "--output" in result.stderr.decode()
    assert list(tmp_path.iterdir()) == []

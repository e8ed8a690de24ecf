"""`POST /v1/imports` and the error report: what the API accepts, stores and refuses. The job
itself runs here by calling the worker's function, as arq would."""

import csv
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import Settings
from services.core.models.enums import Scope
from services.scorer.jobs.imports import run_import
from tests.api.customer_rows import insert_channel, insert_customer
from tests.api.import_uploads import (
    BOUNDARY,
    job_id_of,
    multipart,
    post_import,
    uploaded,
    use_import_dir,
)
from tests.conftest import KeyMaker
from tests.helpers import assert_problem, count_rows

HISTORY = (
    b"external_id,customer_external_ref,kind,occurred_at,amount\n"
    b"e-1,C-1,order,2026-03-01T10:00:00+08:00,120.50\n"
    b"e-2,C-2,visit,2026-03-02T10:00:00Z,\n"
    b"e-3,NOBODY,visit,2026-03-03T10:00:00Z,\n"
    b"e-4,C-1,order,2026-03-04T10:00:00Z,\n"
    b"e-5,C-1,visit,2026-03-05,\n"
    b"e-6,C-2,call,2026-03-06T10:00:00Z,\n"
)
NAME = "历史 interactions.csv"
WRITES = ("jobs", "outbox_events", "audit_events", "import_runs", "interactions", "customers")


@pytest.fixture
def import_settings(
    app: FastAPI, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    return use_import_dir(app, settings, tmp_path / "imports", monkeypatch)


@pytest.fixture
def ctx(app: FastAPI, import_settings: Settings) -> dict[str, Any]:
    return {"settings": import_settings, "sessionmaker": app.state.sessionmaker, "job_try": 1}


async def fetch(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(text(sql), params)
        return [dict(r) for r in result.mappings()]


async def written(engine: AsyncEngine) -> dict[str, int]:
    return {table: await count_rows(engine, table) for table in WRITES}


async def customers(engine: AsyncEngine) -> None:
    await insert_customer(engine, external_ref="C-1")
    await insert_customer(engine, external_ref="C-2")


def report_rows(response: httpx.Response) -> list[list[str]]:
    assert response.content.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


async def test_an_uploaded_csv_is_imported_by_its_job_with_an_error_report(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    import_settings: Settings,
    ctx: dict[str, Any],
) -> None:
    await customers(engine)
    response = await post_import(
        client, "interactions", NAME, HISTORY, as_of="2026-06-30T16:00:00+08:00"
    )
    job_id = job_id_of(response)
    job = response.json()
    assert (job["kind"], job["status"], job["created_by"]) == ("import", "queued", "test")
    assert job["params"] == {
        "kind": "interactions",
        "filename": NAME,
        "format": "csv",
        "recompute": True,
        "as_of": "2026-06-30T16:00:00+08:00",
        "size": len(HISTORY),
        "sha256": hashlib.sha256(HISTORY).hexdigest(),
    }
    [event] = await fetch(engine, "SELECT type, payload FROM outbox_events")
    assert event["type"] == "jobs.requested"
    assert event["payload"]["ids"] == [str(job_id)]
    assert event["payload"]["kind"] == "import"
    directory = import_settings.import_dir
    assert uploaded(directory) == [str(job_id), f"{job_id}/upload.csv"]
    assert (directory / str(job_id) / "upload.csv").read_bytes() == HISTORY
    assert await count_rows(engine, "interactions") == 0  # the worker imports, not the API
    assert_problem(await client.get(f"/v1/imports/{job_id}/errors"), 404)

    assert await run_import(ctx, str(job_id)) == "succeeded"

    done = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert done["status"] == "succeeded", done
    assert (done["done"], done["total"], done["progress"]) == (6, 6, 1.0)
    result = done["result"]
    assert (result["rows"], result["imported"], result["duplicates"], result["failed"]) == (
        6,
        3,
        0,
        3,
    )
    assert result["has_error_report"] is True
    [run] = await fetch(engine, "SELECT id, status FROM import_runs")
    assert (result["run_id"], run["status"]) == (str(run["id"]), "finished")
    stored = await fetch(engine, "SELECT external_id FROM interactions ORDER BY external_id")
    assert [r["external_id"] for r in stored] == ["e-1", "e-2", "e-6"]
    [recompute] = await fetch(engine, "SELECT id, params FROM jobs WHERE kind = 'recompute'")
    assert result["recompute_job_id"] == str(recompute["id"])
    assert recompute["params"]["as_of"] == "2026-06-30T08:00:00+00:00"
    # The upload is let go once imported; its report stays for download.
    assert uploaded(directory) == [str(job_id), f"{job_id}/upload.csv.errors.csv"]

    report = await client.get(f"/v1/imports/{job_id}/errors")
    assert report.status_code == 200, report.text
    assert report.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in report.headers["content-disposition"]
    assert "interactions.csv.errors.csv" in report.headers["content-disposition"]
    rows = report_rows(report)
    assert rows[0] == ["file", "line", "field", "reason"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        (NAME, "4", "customer_external_ref"),
        (NAME, "5", "amount"),
        (NAME, "6", "occurred_at"),
    ]
    assert rows[1][3] == "no customer has this value"
    assert all(r[3] for r in rows[1:])

    # arq may run the job again: it is finished, so nothing happens.
    assert await run_import(ctx, str(job_id)) == "skipped"
    assert await count_rows(engine, "interactions") == 3


async def test_ndjson_customers_by_format_field_without_recompute(
    client: httpx.AsyncClient, engine: AsyncEngine, ctx: dict[str, Any]
) -> None:
    channel = await insert_channel(engine, external_ref="CH-1")
    lines = [
        {"external_ref": "C-1", "name": "张敏", "channel_external_ref": "CH-1", "tags": ["vip"]},
        {"external_ref": "C-2", "name": "王芳", "value_tier": "Z"},
        {"external_ref": "C-3", "name": "Li Na", "email": "li.na@example.com"},
    ]
    content = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
    response = await post_import(
        client, "customers", "people.txt", content, format="ndjson", recompute="false"
    )
    job_id = job_id_of(response)
    assert response.json()["params"]["format"] == "ndjson"
    assert response.json()["params"]["recompute"] is False

    assert await run_import(ctx, str(job_id)) == "succeeded"

    result = (await client.get(f"/v1/jobs/{job_id}")).json()["result"]
    assert (result["rows"], result["imported"], result["failed"]) == (3, 2, 1)
    assert result["recompute_job_id"] is None
    assert await count_rows(engine, "jobs") == 1
    stored = await fetch(
        engine, "SELECT external_ref, name, channel_id, tags FROM customers ORDER BY external_ref"
    )
    assert [(r["external_ref"], r["name"]) for r in stored] == [("C-1", "张敏"), ("C-3", "Li Na")]
    assert stored[0]["channel_id"] == channel
    assert stored[0]["tags"] == ["vip"]
    rows = report_rows(await client.get(f"/v1/imports/{job_id}/errors"))
    assert rows[1:] == [["people.txt", "2", "value_tier", "'Z' is not one of A, B, C"]]


async def test_a_file_that_fits_has_no_error_report(
    client: httpx.AsyncClient, engine: AsyncEngine, ctx: dict[str, Any]
) -> None:
    content = b"external_ref,name,type\nCH-1,East,agent\n"
    job_id = job_id_of(await post_import(client, "channels", "channels.csv", content))
    assert await run_import(ctx, str(job_id)) == "succeeded"
    result = (await client.get(f"/v1/jobs/{job_id}")).json()["result"]
    assert (result["imported"], result["failed"], result["has_error_report"]) == (1, 0, False)
    body = assert_problem(await client.get(f"/v1/imports/{job_id}/errors"), 404)
    assert "no row failed" in body["detail"]
    assert_problem(await client.get(f"/v1/imports/{uuid.uuid4()}/errors"), 404)
    recompute = await client.post("/v1/scoring/recompute", json={})
    assert_problem(await client.get(f"/v1/imports/{recompute.json()['id']}/errors"), 404)


BAD_UPLOADS: list[tuple[str, dict[str, Any], str]] = [
    ("no file", {"filename": "a.csv", "content": None}, "body.file"),
    ("empty file", {"content": b""}, "body.file"),
    ("unknown kind", {"kind": "orders"}, "body.kind"),
    ("no kind", {"kind": None}, "body.kind"),
    ("unknown extension", {"filename": "history.xlsx"}, "body.file"),
    ("no file name", {"filename": None}, "body.file"),
    ("unknown format", {"format": "xlsx"}, "body.format"),
    ("as_of not a time", {"as_of": "tomorrow"}, "body.as_of"),
    ("as_of without a zone", {"as_of": "2026-06-30T12:00:00"}, "body.as_of"),
    ("recompute not a boolean", {"recompute": "maybe"}, "body.recompute"),
    ("unknown field", {"recompte": "false"}, "body.recompte"),
    (
        "columns of another kind",
        {"content": b"external_ref,name\nC-1,Zhang\n"},
        "body.file",
    ),
    ("NDJSON that is not", {"format": "ndjson"}, "body.file"),
]


@pytest.mark.parametrize(("case", "change", "field"), BAD_UPLOADS, ids=[c[0] for c in BAD_UPLOADS])
async def test_bad_uploads_are_422_naming_the_field_and_leave_nothing(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    import_settings: Settings,
    case: str,
    change: dict[str, Any],
    field: str,
) -> None:
    before = await written(engine)
    upload = {"kind": "interactions", "filename": "h.csv", "content": HISTORY} | change
    kind, filename, content = upload.pop("kind"), upload.pop("filename"), upload.pop("content")
    parts: list[tuple[str, str | bytes, str | None]] = (
        [] if kind is None else [("kind", kind, None)]
    )
    parts += [(name, value, None) for name, value in upload.items()]
    if content is not None:
        parts.append(("file", content, filename))
    response = await client.post(
        "/v1/imports",
        content=multipart(*parts),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert_problem(response, 422, field)
    assert await written(engine) == before
    assert uploaded(import_settings.import_dir) == []


async def test_too_large_is_413_before_and_while_reading(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limited = use_import_dir(app, settings, tmp_path / "imports", monkeypatch, import_max_bytes=100)
    before = await written(engine)
    # By its Content-Length, beyond any envelope: refused unread.
    huge = b"external_id,customer_external_ref,kind,occurred_at\n" + b"x" * 200_000
    body = assert_problem(
        await post_import(client, "interactions", "h.csv", huge), 413, "body.file"
    )
    assert body["max_bytes"] == 100
    # Within the envelope allowance, the file part itself runs over while it is read.
    assert len(HISTORY) > 100
    assert_problem(await post_import(client, "interactions", "h.csv", HISTORY), 413, "body.file")
    assert await written(engine) == before
    assert uploaded(limited.import_dir) == []
    exactly = HISTORY[:100].rsplit(b"\n", 1)[0] + b"\n"
    job_id_of(await post_import(client, "interactions", "h.csv", exactly))


async def test_bodies_that_are_not_a_form_are_refused(
    client: httpx.AsyncClient, engine: AsyncEngine, import_settings: Settings
) -> None:
    before = await written(engine)
    as_json = await client.post("/v1/imports", json={"kind": "interactions"})
    assert_problem(as_json, 415, "header.Content-Type")
    truncated = multipart(("kind", "interactions", None), ("file", HISTORY, "h.csv"), close=False)
    cut = await client.post(
        "/v1/imports",
        content=truncated[:-10],
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert_problem(cut, 400, "body")
    twice = multipart(
        ("kind", "interactions", None), ("file", HISTORY, "a.csv"), ("file", HISTORY, "b.csv")
    )
    again = await client.post(
        "/v1/imports",
        content=twice,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert_problem(again, 422, "body.file")
    assert await written(engine) == before
    assert uploaded(import_settings.import_dir) == []


async def test_scopes(
    client_for: KeyMaker,
    anonymous: httpx.AsyncClient,
    engine: AsyncEngine,
    import_settings: Settings,
) -> None:
    reader = await client_for(Scope.read)
    writer = await client_for(Scope.write)
    before = await written(engine)
    assert_problem(await post_import(anonymous, "interactions", "h.csv", HISTORY), 401)
    assert_problem(await post_import(reader, "interactions", "h.csv", HISTORY), 403)
    assert await written(engine) == before
    assert uploaded(import_settings.import_dir) == []
    assert_problem(await anonymous.get(f"/v1/imports/{uuid.uuid4()}/errors"), 401)
    assert_problem(await reader.get(f"/v1/imports/{uuid.uuid4()}/errors"), 404)
    job_id_of(await post_import(writer, "interactions", "h.csv", HISTORY))


async def test_idempotency_key_replays_the_job_and_keeps_one_upload(
    client: httpx.AsyncClient, engine: AsyncEngine, import_settings: Settings
) -> None:
    headers = {"Idempotency-Key": "import-1"}
    first = await post_import(client, "interactions", "h.csv", HISTORY, headers=headers)
    again = await post_import(client, "interactions", "h.csv", HISTORY, headers=headers)
    job_id = job_id_of(first)
    assert job_id_of(again) == job_id
    assert again.headers["idempotent-replayed"] == "true"
    other = await post_import(client, "interactions", "h.csv", HISTORY + b"\n", headers=headers)
    assert_problem(other, 422, "header.Idempotency-Key")
    assert await count_rows(engine, "jobs") == 1
    assert uploaded(import_settings.import_dir) == [str(job_id), f"{job_id}/upload.csv"]


async def test_a_streamed_upload_is_written_as_it_arrives(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A body sent in chunks without a Content-Length: every chunk lands in the file, and the
    size limit holds while reading."""
    rows = b"".join(
        f"x-{n},C-{n % 7},visit,2026-03-01T10:00:00Z\n".encode() for n in range(120_000)
    )
    content = b"external_id,customer_external_ref,kind,occurred_at\n" + rows
    assert len(content) > 3 * 2**20
    body = multipart(("kind", "interactions", None), ("file", content, "big.csv"))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    limited = use_import_dir(
        app, settings, tmp_path / "imports", monkeypatch, import_max_bytes=len(content) - 1
    )
    refused = await client.post("/v1/imports", content=chunks(), headers=headers)
    assert "content-length" not in refused.request.headers
    assert_problem(refused, 413, "body.file")
    assert uploaded(limited.import_dir) == []

    use_import_dir(app, settings, tmp_path / "imports", monkeypatch)
    job_id = job_id_of(await client.post("/v1/imports", content=chunks(), headers=headers))
    stored = limited.import_dir / str(job_id) / "upload.csv"
    assert stored.read_bytes() == content
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["params"]["size"] == len(content)
    assert job["params"]["sha256"] == hashlib.sha256(content).hexdigest()

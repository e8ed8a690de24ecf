"""Importing interactions against a real database: what is stored, what is reported, the
recompute job, and refusing a file before anything is written."""

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import Settings
from services.core.db import asyncpg_dsn
from services.core.errors import Conflict, InvalidInput
from services.core.imports import runs
from services.core.imports.service import ImportFormat, ImportOptions, import_file
from services.core.models.imports import ImportKind
from tests.core.imports.conftest import World, fetch, report_lines, write
from tests.helpers import count_rows

KIND = ImportKind.interactions


async def _events(engine: AsyncEngine, type_: str) -> list[dict[str, Any]]:
    rows = await fetch(
        engine, "SELECT payload FROM outbox_events WHERE type = :t ORDER BY id", t=type_
    )
    return [row["payload"] for row in rows]


async def test_csv_rows_are_stored_with_one_event_per_batch(
    settings: Settings, engine: AsyncEngine, world: World, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "history.csv",
        [
            "external_id,customer_external_ref,kind,occurred_at,amount,currency,summary",
            "e-1,C-1,order,2026-03-01T10:30:00+08:00,1280.50,,春季补货",
            "e-2,C-2,visit,2026-03-02T09:00:00Z,,,",
            "e-3,C-1,payment,2026-03-03T09:00:00Z,99,usd,",
            "e-4,C-3,call,2026-03-04T09:00:00Z,,,",
            "e-5,C-1,visit,2026-03-05T09:00:00Z,,,",
        ],
    )
    before = datetime.now(UTC)
    result = await import_file(settings, KIND, path, ImportOptions(batch_size=2))

    assert (result.rows, result.imported, result.duplicates, result.failed) == (5, 5, 0, 0)
    assert result.report is None
    assert not (tmp_path / "history.csv.errors.csv").exists()
    stored = await fetch(
        engine,
        "SELECT external_id, customer_id, channel_id, kind, occurred_at, amount, currency, summary"
        " FROM interactions ORDER BY external_id",
    )
    c1, c2, c3 = (world.customers[r] for r in ("C-1", "C-2", "C-3"))
    ch1, ch2 = world.channels["CH-1"], world.channels["CH-2"]
    assert [(r["external_id"], r["customer_id"], r["channel_id"]) for r in stored] == [
        ("e-1", c1, ch1),
        ("e-2", c2, None),
        ("e-3", c1, ch1),
        ("e-4", c3, ch2),
        ("e-5", c1, ch1),
    ]
    assert stored[0]["occurred_at"] == datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
    assert (stored[0]["amount"], stored[0]["currency"]) == (Decimal("1280.5000"), "CNY")
    assert (stored[2]["amount"], stored[2]["currency"]) == (Decimal("99.0000"), "USD")
    assert stored[0]["summary"] == "春季补货"
    assert stored[1]["amount"] is None
    assert stored[1]["currency"] is None

    # No event per batch: the recompute the run queues at its end rescores its customers once.
    assert await fetch(engine, "SELECT type FROM outbox_events") == [{"type": "jobs.requested"}]
    assert await count_rows(engine, "audit_events", "resource_type = 'interaction_import'") == 3

    assert result.recompute_job_id is not None
    [job] = await fetch(engine, "SELECT * FROM jobs WHERE id = :id", id=result.recompute_job_id)
    assert (job["kind"], job["status"], job["created_by"]) == ("recompute", "queued", "import")
    assert job["params"]["customer_ids"] == sorted(str(c) for c in (c1, c2, c3))
    assert before <= datetime.fromisoformat(job["params"]["as_of"]) <= datetime.now(UTC)
    [requested] = await _events(engine, "jobs.requested")
    assert requested == {"ids": [str(job["id"])], "customer_ids": [], "kind": "recompute"}
    [run] = await fetch(engine, "SELECT * FROM import_runs")
    assert (run["status"], run["committed_line"], run["rows"], run["imported"]) == (
        "finished",
        6,
        5,
        5,
    )
    assert run["recompute_job_id"] == job["id"]
    assert run["committed_offset"] == path.stat().st_size


async def test_ndjson_names_customers_and_channels_by_id_or_reference(
    settings: Settings, engine: AsyncEngine, world: World, tmp_path: Path
) -> None:
    c2 = world.customers["C-2"]
    path = write(
        tmp_path,
        "feed.jsonl",
        [
            f'{{"customer_id": "{c2}", "channel_external_ref": "CH-1", "kind": "feedback",'
            ' "occurred_at": "2026-03-31T08:00:00Z", "nps": 9, "summary": "服务很好",'
            ' "attributes": {"survey": "q1"}, "attributes.score_source": "app"}',
            f'{{"customer_id": "{c2}", "kind": "order", "occurred_at": "2026-04-01T08:00:00Z",'
            ' "amount": "10.0001", "currency": "EUR"}',
            '{"customer_external_ref": "C-3", "channel_id": "'
            + str(world.channels["CH-1"])
            + '", "kind": "email", "occurred_at": "2026-04-02T08:00:00+08:00"}',
        ],
    )
    result = await import_file(settings, KIND, path, ImportOptions(recompute=False))
    assert (result.imported, result.failed, result.recompute_job_id) == (3, 0, None)
    stored = await fetch(
        engine,
        "SELECT customer_id, channel_id, kind, nps, amount, currency, external_id, attributes"
        " FROM interactions ORDER BY occurred_at",
    )
    assert [(r["customer_id"], r["channel_id"], r["kind"]) for r in stored] == [
        (c2, world.channels["CH-1"], "feedback"),
        (c2, None, "order"),
        (world.customers["C-3"], world.channels["CH-1"], "email"),
    ]
    assert stored[0]["nps"] == 9
    assert stored[0]["attributes"] == {"survey": "q1", "score_source": "app"}
    assert (stored[1]["amount"], stored[1]["currency"]) == (Decimal("10.0001"), "EUR")
    assert all(r["external_id"] is None for r in stored)
    assert await count_rows(engine, "jobs") == 0


MALFORMED = b"""external_id,customer_external_ref,kind,occurred_at,amount
g-1,C-1,order,2026-03-01T10:30:00+08:00,10
g-2,C-1,visit,2026-03-01,
g-3,NOBODY,visit,2026-03-01T10:30:00Z,
g-1,C-1,order,2026-03-01T10:30:00+08:00,10
g-4,C-\xe92,visit,2026-03-01T10:30:00Z,
g-5,C-2,purchase,2026-03-01T10:30:00Z,
g-6,C-2,,2026-03-01T10:30:00Z,
g-7,C-3,visit,2026-03-01T10:30:00Z,
g-1,C-1,order,2026-03-01T10:30:00+08:00,10
g-8,C-1,order,2026-03-01T10:30:00Z,1.23456
old-1,C-2,visit,2026-03-01T10:30:00Z,
g-9,C-2,visit,2026-03-01T10:30:00Z,
"""


async def test_a_malformed_file_reports_each_bad_row_and_imports_the_rest(
    settings: Settings, engine: AsyncEngine, world: World, tmp_path: Path
) -> None:
    async with engine.begin() as conn:  # stored by an earlier import: a duplicate, not an error
        old_id = uuid.uuid4()
        await conn.exec_driver_sql(
            "INSERT INTO interactions (id, customer_id, kind, occurred_at, external_id)"
            f" VALUES ('{old_id}', '{world.customers['C-2']}', 'visit', now(), 'old-1')"
        )
        await conn.exec_driver_sql(
            "INSERT INTO interaction_external_ids (external_id, interaction_id, occurred_at)"
            f" SELECT external_id, id, occurred_at FROM interactions WHERE id = '{old_id}'"
        )
    path = write(tmp_path, "bad.csv", MALFORMED)
    # Batches: lines 2-5, 6-9, 10-13; line 10 repeats line 2 from another batch.
    result = await import_file(settings, KIND, path, ImportOptions(batch_size=4))

    assert (result.rows, result.imported, result.duplicates, result.failed) == (12, 3, 1, 8)
    assert result.report == tmp_path / "bad.csv.errors.csv"
    kinds = "call, email, meeting, usage, feedback, complaint, referral, campaign_response"
    assert report_lines(path) == [
        (3, "occurred_at", "'2026-03-01' has no time zone: add Z or an offset such as +08:00"),
        (4, "customer_external_ref", "no customer has this value"),
        (5, "external_id", "repeats the external_id of line 2"),
        (6, "", "is not valid UTF-8 (byte 0xe9 at position 7)"),
        (7, "kind", f"'purchase' is not one of order, payment, visit, {kinds}"),
        (8, "kind", "is required"),
        (10, "external_id", "repeats the external_id of an earlier line of this file"),
        (11, "amount", "has more than 4 decimal places"),
    ]
    stored = await fetch(engine, "SELECT external_id FROM interactions ORDER BY external_id")
    assert [r["external_id"] for r in stored] == ["g-1", "g-7", "g-9", "old-1"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.csv", "customer_external_ref,kind,when\nC-1,visit,2026-03-01T10:30:00Z\n", "when"),
        ("b.csv", "external_ref,name\nC-9,Wang\n", "external_ref is not a column"),
        ("c.csv", "", "empty"),
        ("d.ndjson", '{"external_ref": "C-9", "name": "Wang"}\n', "external_ref is not a field"),
        ("e.ndjson", "external_id,kind\n", "not a JSON object"),
        ("f.txt", "external_id,kind\n", "Cannot tell the format"),
    ],
)
async def test_a_file_of_the_wrong_shape_is_refused_before_anything_is_written(
    settings: Settings,
    engine: AsyncEngine,
    world: World,
    tmp_path: Path,
    name: str,
    content: str,
    message: str,
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InvalidInput, match=message):
        await import_file(settings, KIND, path)
    assert await count_rows(engine, "import_runs") == 0
    assert await count_rows(engine, "interactions") == 0
    assert list(tmp_path.iterdir()) == [path]


async def test_importing_the_same_file_again_stores_nothing_twice(
    settings: Settings, engine: AsyncEngine, world: World, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "again.csv",
        ["external_id,customer_external_ref,kind,occurred_at"]
        + [f"a-{n},C-{n % 3 + 1},visit,2026-03-0{n + 1}T10:00:00Z" for n in range(5)],
    )
    first = await import_file(settings, KIND, path, ImportOptions(batch_size=2))
    second = await import_file(settings, KIND, path, ImportOptions(batch_size=3))
    assert (first.imported, first.duplicates) == (5, 0)
    assert (second.imported, second.duplicates, second.failed) == (0, 5, 0)
    assert second.resumed_after_line is None
    assert second.recompute_job_id is None  # it wrote no customer
    assert await count_rows(engine, "interactions") == 5
    runs_ = await fetch(engine, "SELECT status FROM import_runs ORDER BY started_at")
    assert [r["status"] for r in runs_] == ["finished", "finished"]


async def test_recompute_as_of_a_time_and_of_everyone_past_the_limit(
    settings: Settings,
    engine: AsyncEngine,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runs, "NAMED_CUSTOMERS_LIMIT", 2)
    path = write(
        tmp_path,
        "three.csv",
        ["customer_external_ref,kind,occurred_at"]
        + [f"C-{n},visit,2026-03-01T10:00:00Z" for n in (1, 2, 3)],
    )
    as_of = datetime(2026, 6, 30, 16, 0, tzinfo=UTC)
    result = await import_file(settings, KIND, path, ImportOptions(as_of=as_of, batch_size=2))
    [job] = await fetch(
        engine, "SELECT params FROM jobs WHERE id = :id", id=result.recompute_job_id
    )
    assert job["params"]["as_of"] == "2026-06-30T16:00:00+00:00"
    assert job["params"]["customer_ids"] is None
    [run] = await fetch(engine, "SELECT all_customers, customer_ids FROM import_runs")
    assert (run["all_customers"], run["customer_ids"]) == (True, [])


async def test_a_second_import_of_the_same_file_at_once_is_refused(
    settings: Settings, world: World, tmp_path: Path
) -> None:
    path = write(tmp_path, "busy.csv", ["customer_external_ref,kind,occurred_at"])
    holder = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    try:
        key = f"retention-import:interactions:{path.resolve()}"
        await holder.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
        with pytest.raises(Conflict, match="Another import"):
            await import_file(settings, KIND, path, ImportOptions(format=ImportFormat.csv))
    finally:
        await holder.close()
    result = await import_file(settings, KIND, path)
    assert result.rows == 0


async def test_an_unknown_reference_is_named_by_the_field_its_row_used(
    settings: Settings, engine: AsyncEngine, world: World, tmp_path: Path
) -> None:
    ghost = uuid.uuid4()
    path = write(
        tmp_path,
        "mixed.ndjson",
        [
            f'{{"customer_id": "{ghost}", "kind": "visit", "occurred_at": "2026-03-01T10:00:00Z"}}',
            '{"customer_external_ref": "C-404", "kind": "visit", "occurred_at": "2026-03-01T10:00:00Z"}',
            f'{{"customer_id": "{world.customers["C-1"]}", "channel_id": "{ghost}",'
            ' "kind": "visit", "occurred_at": "2026-03-01T10:00:00Z"}',
            '{"customer_external_ref": "C-1", "channel_external_ref": "CH-404", "kind": "visit",'
            ' "occurred_at": "2026-03-01T10:00:00Z"}',
            '{"customer_external_ref": "C-2", "kind": "visit", "occurred_at": "2026-03-01T10:00:00Z"}',
        ],
    )
    result = await import_file(settings, KIND, path)
    assert (result.imported, result.failed) == (1, 4)
    assert report_lines(path) == [
        (1, "customer_id", "no customer has this value"),
        (2, "customer_external_ref", "no customer has this value"),
        (3, "channel_id", "no channel has this value"),
        (4, "channel_external_ref", "no channel has this value"),
    ]
    assert await count_rows(engine, "interactions") == 1


async def test_a_long_reader_of_interactions_does_not_hold_the_import_up(
    settings: Settings, engine: AsyncEngine, world: World, tmp_path: Path
) -> None:
    """Creating a month's partition waits for every open reader of the default partition, and
    every later reader would wait behind it: the import gives the month up and stores its rows
    in the default partition."""
    path = write(
        tmp_path,
        "old.csv",
        ["external_id,customer_external_ref,kind,occurred_at"]
        + [f"o-{n},C-1,visit,2011-07-0{n + 1}T10:00:00Z" for n in range(3)],
    )
    reader = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    try:
        async with reader.transaction():
            await reader.fetchval("SELECT count(*) FROM interactions")
            result = await asyncio.wait_for(import_file(settings, KIND, path), 30)
    finally:
        await reader.close()
    assert (result.imported, result.failed) == (3, 0)
    assert await count_rows(engine, "interactions_default") == 3

"""Importing channels, customers and tickets: upserts by external reference that keep what a
file does not give, channel membership history, their events, and every example file."""

from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.config import Settings
from services.core.imports.service import ImportOptions, import_file
from services.core.models.imports import ImportKind
from tests.core.imports.conftest import World, fetch, report_lines, write
from tests.helpers import count_rows

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


async def test_channels_are_created_then_updated_with_what_the_file_gives(
    settings: Settings, engine: AsyncEngine, world: World, tmp_path: Path
) -> None:
    first = write(
        tmp_path,
        "channels.csv",
        [
            "external_ref,name,type,tier,region,tags,attributes.erp",
            "CH-1,渠道一 renamed,agent,core,华东,a|b,E-1",
            "CH-9,新渠道 New,online,,,,",
            "CH-10,No type,,,,,",
            "CH-11,,agent,,,,",
        ],
    )
    result = await import_file(settings, ImportKind.channels, first)
    assert (result.imported, result.duplicates, result.failed) == (2, 0, 2)
    assert result.recompute_job_id is None  # channels name no customer
    assert report_lines(first) == [
        (4, "type", "is required for a new channel"),
        (5, "name", "is required for a new channel"),
    ]
    rows = await fetch(
        engine,
        "SELECT external_ref, name, type, tier, region, tags, attributes, status, version"
        " FROM channels ORDER BY external_ref",
    )
    by_ref = {r["external_ref"]: r for r in rows}
    assert set(by_ref) == {"CH-1", "CH-2", "CH-9"}
    assert by_ref["CH-1"]["name"] == "渠道一 renamed"
    assert (by_ref["CH-1"]["tier"], by_ref["CH-1"]["tags"], by_ref["CH-1"]["version"]) == (
        "core",
        ["a", "b"],
        2,
    )
    assert by_ref["CH-9"]["status"] == "active"
    assert by_ref["CH-9"]["tags"] == []

    second = write(
        tmp_path,
        "channels.ndjson",
        [
            '{"external_ref": "CH-1", "region": "华南", "attributes": {"tier_note": "x"}}',
            '{"external_ref": "CH-9", "name": "新渠道 New", "type": "online"}',
        ],
    )
    result = await import_file(settings, ImportKind.channels, second)
    assert (result.imported, result.duplicates, result.failed) == (1, 1, 0)
    [ch1] = await fetch(engine, "SELECT * FROM channels WHERE external_ref = 'CH-1'")
    assert (ch1["name"], ch1["region"], ch1["tags"], ch1["version"]) == (
        "渠道一 renamed",
        "华南",
        ["a", "b"],
        3,
    )
    assert ch1["attributes"] == {"erp": "E-1", "tier_note": "x"}


async def test_customers_upsert_moves_channels_and_keeps_history(
    settings: Settings, engine: AsyncEngine, world: World, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "customers.csv",
        [
            "external_ref,name,email,channel_external_ref,value_tier,tags,birthday",
            "C-2,,c2@example.com,CH-1,,,",  # into CH-1; name kept
            "N-1,新客户 New,,CH-1,B,vip,1990-01-02",
            "C-1,客户 C-1,,,,,",  # same as stored: a duplicate
            "N-2,,,,,,",  # new without a name
            "N-3,Archived,,CH-2,,,",  # CH-2 is archived
            "N-4,Nowhere,,CH-404,,,",
            "N-1,,n1@example.com,,A,,",  # the same customer again: applied after line 3
        ],
    )
    result = await import_file(settings, ImportKind.customers, path)

    assert (result.rows, result.imported, result.duplicates, result.failed) == (7, 3, 1, 3)
    assert report_lines(path) == [
        (5, "name", "is required for a new customer"),
        (6, "channel_external_ref", "the channel is archived"),
        (7, "channel_external_ref", "no channel has this value"),
    ]
    rows = await fetch(
        engine,
        "SELECT id, external_ref, name, email, channel_id, value_tier, tags, birthday, version"
        " FROM customers ORDER BY external_ref",
    )
    by_ref = {r["external_ref"]: r for r in rows}
    assert set(by_ref) == {"C-1", "C-2", "C-3", "N-1"}
    ch1 = world.channels["CH-1"]
    assert (by_ref["C-2"]["name"], by_ref["C-2"]["email"], by_ref["C-2"]["channel_id"]) == (
        "客户 C-2",
        "c2@example.com",
        ch1,
    )
    new = by_ref["N-1"]
    assert (new["name"], new["email"], new["value_tier"], new["tags"]) == (
        "新客户 New",
        "n1@example.com",
        "A",
        ["vip"],
    )
    assert (new["birthday"], new["channel_id"], new["version"]) == (date(1990, 1, 2), ch1, 2)
    assert by_ref["C-1"]["version"] == 1

    memberships = await fetch(
        engine,
        "SELECT customer_id, channel_id, ended_at FROM customer_channel_memberships",
    )
    assert sorted(
        (m["customer_id"], m["channel_id"], m["ended_at"]) for m in memberships
    ) == sorted([(world.customers["C-2"], ch1, None), (new["id"], ch1, None)])
    # The recompute the run queues rescores the customers it wrote; no event per batch.
    written = sorted(str(by_ref[r]["id"]) for r in ("C-2", "N-1"))
    [job] = await fetch(engine, "SELECT params FROM jobs")
    assert job["params"]["customer_ids"] == written
    assert await fetch(engine, "SELECT type FROM outbox_events") == [{"type": "jobs.requested"}]

    # Moving C-2 on closes its membership in CH-1 and opens one in CH-9.
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO channels (id, external_ref, name, type) "
            "VALUES ('0196f5d2-0000-7a3b-9d2f-3e4f5a6b7c8d', 'CH-9', 'Nine', 'direct')"
        )
    moved = write(
        tmp_path, "move.ndjson", ['{"external_ref": "C-2", "channel_external_ref": "CH-9"}']
    )
    result = await import_file(
        settings, ImportKind.customers, moved, ImportOptions(recompute=False)
    )
    assert result.imported == 1
    history = await fetch(
        engine,
        "SELECT channel_id, ended_at IS NULL AS open FROM customer_channel_memberships"
        " WHERE customer_id = :c ORDER BY id",
        c=world.customers["C-2"],
    )
    assert [(str(h["channel_id"]), h["open"]) for h in history] == [
        (str(ch1), False),
        ("0196f5d2-0000-7a3b-9d2f-3e4f5a6b7c8d", True),
    ]


async def test_tickets_upsert_by_external_id_and_stamp_their_status(
    settings: Settings, engine: AsyncEngine, world: World, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "tickets.ndjson",
        [
            '{"external_id": "t-1", "customer_external_ref": "C-1", "subject": "配送延迟",'
            ' "kind": "complaint", "status": "resolved", "created_at": "2026-05-06T11:25:00+08:00",'
            ' "resolved_at": "2026-05-07T18:30:00+08:00", "satisfaction": 4, "tags": ["物流"]}',
            '{"external_id": "t-2", "customer_external_ref": "C-2", "subject": "Invoice",'
            ' "kind": "request", "created_at": "2026-05-10T09:05:00+08:00"}',
            '{"external_id": "t-3", "customer_external_ref": "C-404", "subject": "x", "kind": "request"}',
            '{"external_id": "t-4", "customer_external_ref": "C-1", "channel_external_ref": "CH-404",'
            ' "subject": "x", "kind": "request"}',
        ],
    )
    result = await import_file(settings, ImportKind.tickets, path)
    assert (result.imported, result.duplicates, result.failed) == (2, 0, 2)
    assert report_lines(path) == [
        (3, "customer_external_ref", "no customer has this value"),
        (4, "channel_external_ref", "no channel has this value"),
    ]
    rows = await fetch(engine, "SELECT * FROM tickets ORDER BY external_id")
    t1, t2 = rows
    assert (t1["customer_id"], t1["channel_id"], t1["status"], t1["priority"]) == (
        world.customers["C-1"],
        world.channels["CH-1"],
        "resolved",
        "normal",
    )
    assert t1["created_at"] == datetime(2026, 5, 6, 3, 25, tzinfo=UTC)
    assert t1["resolved_at"] == datetime(2026, 5, 7, 10, 30, tzinfo=UTC)
    assert (t1["satisfaction"], t1["tags"], t1["closed_at"]) == (4, ["物流"], None)
    assert (t2["status"], t2["resolved_at"], t2["channel_id"]) == ("open", None, None)

    update = write(
        tmp_path,
        "tickets.csv",
        [
            "external_id,customer_external_ref,subject,kind,status,closed_at",
            "t-1,C-1,配送延迟,complaint,closed,2026-05-08T09:00:00+08:00",
            "t-2,C-2,Invoice,request,,",
        ],
    )
    result = await import_file(settings, ImportKind.tickets, update)
    assert (result.imported, result.duplicates, result.failed) == (1, 1, 0)
    [t1] = await fetch(engine, "SELECT * FROM tickets WHERE external_id = 't-1'")
    assert (t1["status"], t1["version"]) == ("closed", 2)
    assert t1["resolved_at"] == datetime(2026, 5, 7, 10, 30, tzinfo=UTC)
    assert t1["closed_at"] == datetime(2026, 5, 8, 1, 0, tzinfo=UTC)
    jobs = await fetch(engine, "SELECT params FROM jobs ORDER BY created_at")
    assert [j["params"]["customer_ids"] for j in jobs] == [
        sorted([str(world.customers["C-1"]), str(world.customers["C-2"])]),
        [str(world.customers["C-1"])],
    ]
    assert await count_rows(engine, "outbox_events", "type = 'tickets.changed'") == 0


async def test_the_example_files_import_cleanly_in_order(
    settings: Settings, engine: AsyncEngine, world: World, tmp_path: Path
) -> None:
    expected = {
        ("channels", "channels.csv"): 3,
        ("customers", "customers.csv"): 3,
        ("interactions", "interactions.csv"): 6,
        ("tickets", "tickets.ndjson"): 3,
    }
    for (kind, name), rows in expected.items():
        copy = tmp_path / name
        copy.write_bytes((EXAMPLES / name).read_bytes())
        result = await import_file(settings, ImportKind(kind), copy)
        assert (result.rows, result.imported, result.failed) == (rows, rows, 0), name
    assert await count_rows(engine, "customers", "name LIKE '%张敏%'") == 1
    assert await count_rows(engine, "customer_channel_memberships") == 3
    assert await count_rows(engine, "interactions", "summary = '春季补货 spring restock'") == 1
    assert await count_rows(engine, "tickets", "status = 'closed' AND closed_at IS NOT NULL") == 1

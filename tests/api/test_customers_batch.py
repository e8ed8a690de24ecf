from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.core import audit
from tests.api.test_customers import MISSING, history, make_channel
from tests.helpers import assert_problem, count_rows, walk

URL = "/v1/customers/batch"


async def send(client: httpx.AsyncClient, items: list[Any]) -> dict[str, Any]:
    response = await client.post(URL, json={"items": items})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert [r["index"] for r in result["results"]] == list(range(len(items)))
    return result


def statuses(result: dict[str, Any]) -> list[str]:
    return [r["status"] for r in result["results"]]


async def by_ref(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    items = await walk(client, "/v1/customers", include_archived=True, limit=100)
    return {c["external_ref"]: c for c in items}


async def test_create_update_unchanged(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    first = await send(
        client,
        [
            {"external_ref": "R1", "name": "王芳", "tags": ["vip"]},
            {"external_ref": "R2", "name": "Wang Fang", "email": "wang@example.com"},
            {"external_ref": "R3", "name": "Li Na", "value_tier": "B"},
        ],
    )
    assert statuses(first) == ["created"] * 3
    assert (first["created"], first["updated"], first["unchanged"], first["errors"]) == (3, 0, 0, 0)
    stored = await by_ref(client)
    assert [r["id"] for r in first["results"]] == [stored[f"R{i}"]["id"] for i in (1, 2, 3)]
    assert stored["R1"]["lifecycle_stage"] == "onboarding"
    assert all(c["version"] == 1 for c in stored.values())

    second = await send(
        client,
        [
            {"external_ref": "R4", "name": "New"},
            {"external_ref": "R1", "name": "王芳", "tags": ["vip"]},
            {"external_ref": "R2", "name": "Wang Fang", "email": "fang@example.com"},
            {"external_ref": "R3", "name": "Li Na"},
        ],
    )
    assert statuses(second) == ["created", "unchanged", "updated", "unchanged"]
    assert (second["created"], second["updated"], second["unchanged"]) == (1, 1, 2)
    after = await by_ref(client)
    assert [r["id"] for r in second["results"][1:]] == [after[f"R{i}"]["id"] for i in (1, 2, 3)]
    assert after["R2"]["email"] == "fang@example.com"
    assert after["R2"]["version"] == 2
    assert after["R2"]["updated_at"] > stored["R2"]["updated_at"]
    assert after["R1"] == stored["R1"]
    assert after["R3"] == stored["R3"]
    assert await count_rows(engine, "customers") == 4

    events = (await client.get("/v1/audit-events", params={"action": "upsert"})).json()["items"]
    assert len(events) == 5
    update = next(e for e in events if e["resource_id"] == after["R2"]["id"] and e["before"])
    assert update["before"]["email"] == "wang@example.com"
    assert update["after"]["email"] == "fang@example.com"
    assert update["after"]["version"] == 2


async def test_omitted_fields_keep_stored_values(client: httpx.AsyncClient) -> None:
    channel = await make_channel(client)
    created = await client.post(
        "/v1/customers",
        json={
            "external_ref": "K1",
            "name": "Keep",
            "email": "k@example.com",
            "lifecycle_stage": "active",
            "channel_id": channel["id"],
            "attributes": {"a": 1},
        },
    )
    assert created.status_code == 201
    result = await send(client, [{"external_ref": "K1", "name": "Keep", "email": None}])
    assert statuses(result) == ["updated"]
    stored = (await by_ref(client))["K1"]
    assert stored["email"] is None
    assert stored["lifecycle_stage"] == "active"
    assert stored["channel_id"] == channel["id"]
    assert stored["attributes"] == {"a": 1}
    assert len(await history(client, stored["id"])) == 1


async def test_archived_customer_is_updated_and_stays_archived(client: httpx.AsyncClient) -> None:
    created = (await client.post("/v1/customers", json={"external_ref": "A1", "name": "a"})).json()
    await client.delete(f"/v1/customers/{created['id']}")
    result = await send(client, [{"external_ref": "A1", "name": "b"}])
    assert result["results"][0] == {
        "index": 0,
        "status": "updated",
        "id": created["id"],
        "external_ref": "A1",
        "errors": [],
    }
    stored = (await client.get(f"/v1/customers/{created['id']}")).json()
    assert stored["name"] == "b"
    assert stored["archived_at"] is not None


async def test_per_item_errors_do_not_stop_the_batch(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    active = await make_channel(client, name="Active")
    archived = await make_channel(client, name="Archived")
    await client.delete(f"/v1/channels/{archived['id']}")
    items: list[Any] = [
        {"external_ref": "OK-1", "name": "好客户", "channel_id": active["id"]},
        {"external_ref": "E-1", "name": "x", "email": "not-an-email"},
        {"name": "no ref"},
        {"external_ref": "E-3"},
        {"external_ref": "E-4", "name": "x", "colour": "red"},
        "not an object",
        {"external_ref": "E-6", "name": ["x"], "tags": "vip"},
        {"external_ref": "E-7", "name": "x", "channel_id": MISSING},
        {"external_ref": "E-8", "name": "x", "channel_id": archived["id"]},
        {"external_ref": "OK-1", "name": "repeat"},
        {"external_ref": "OK-2", "name": "fine", "value_tier": "C"},
        {"external_ref": "E-11", "name": "x", "channel_id": "not-a-uuid"},
        {"external_ref": "E-12", "name": "x", "notes": "a\u0000b"},
    ]
    result = await send(client, items)
    assert statuses(result) == ["created"] + ["error"] * 9 + ["created"] + ["error"] * 2
    assert (result["created"], result["updated"], result["errors"]) == (2, 0, 11)
    fields = {r["index"]: {e["field"] for e in r["errors"]} for r in result["results"]}
    assert fields[1] == {"items.1.email"}
    assert fields[2] == {"items.2.external_ref"}
    assert fields[3] == {"items.3.name"}
    assert fields[4] == {"items.4.colour"}
    assert fields[5] == {"items.5"}
    assert fields[6] == {"items.6.name", "items.6.tags"}
    assert fields[7] == {"items.7.channel_id"}
    assert fields[8] == {"items.8.channel_id"}
    assert fields[9] == {"items.9.external_ref"}
    assert fields[11] == {"items.11.channel_id"}
    assert fields[12] == {"items.12.notes"}
    errors = result["results"]
    assert "archived" in errors[8]["errors"][0]["message"]
    assert "items.0" in errors[9]["errors"][0]["message"]
    assert all(r["id"] is None for r in errors if r["status"] == "error")
    assert errors[7]["external_ref"] == "E-7"

    stored = await by_ref(client)
    assert set(stored) == {"OK-1", "OK-2"}
    assert stored["OK-1"]["name"] == "好客户"
    assert await count_rows(engine, "customer_channel_memberships") == 1
    assert await count_rows(engine, "audit_events", "action = 'upsert'") == 2


async def test_memberships_follow_batch_moves(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    east = await make_channel(client, name="East")
    west = await make_channel(client, name="West")
    await send(
        client,
        [
            {"external_ref": "M1", "name": "a", "channel_id": east["id"]},
            {"external_ref": "M2", "name": "b", "channel_id": east["id"]},
            {"external_ref": "M3", "name": "c"},
        ],
    )
    result = await send(
        client,
        [
            {"external_ref": "M1", "name": "a", "channel_id": west["id"]},
            {"external_ref": "M2", "name": "b", "channel_id": east["id"]},
            {"external_ref": "M3", "name": "c", "channel_id": west["id"]},
        ],
    )
    assert statuses(result) == ["updated", "unchanged", "updated"]
    third = await send(client, [{"external_ref": "M1", "name": "a", "channel_id": None}])
    assert statuses(third) == ["updated"]

    ids = {r["external_ref"]: r["id"] for r in result["results"]}
    m1 = await history(client, ids["M1"])
    assert [(m["channel_name"], m["ended_at"] is None) for m in m1] == [
        ("West", False),
        ("East", False),
    ]
    assert m1[1]["ended_at"] == m1[0]["started_at"]
    assert [m["channel_name"] for m in await history(client, ids["M2"])] == ["East"]
    assert [(m["channel_name"], m["ended_at"]) for m in await history(client, ids["M3"])] == [
        ("West", None)
    ]
    assert await count_rows(engine, "customer_channel_memberships", "ended_at IS NULL") == 2


async def test_oversize_and_malformed_batches_write_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    too_many = [{"external_ref": f"R{i}", "name": "x"} for i in range(1001)]
    assert_problem(await client.post(URL, json={"items": too_many}), 422, "body.items")
    for body, field in (
        ({}, "body.items"),
        ({"items": "x"}, "body.items"),
        ({"items": {"external_ref": "R", "name": "x"}}, "body.items"),
        ({"items": [], "dry_run": True}, "body.dry_run"),
        ([{"external_ref": "R", "name": "x"}], "body"),
    ):
        assert_problem(await client.post(URL, json=body), 422, field)
    malformed = await client.post(
        URL,
        content=b'{"items": [{"external_ref": "R"',
        headers={"content-type": "application/json"},
    )
    assert_problem(malformed, 400)
    empty = await send(client, [])
    assert (empty["results"], empty["created"], empty["errors"]) == ([], 0, 0)
    assert await count_rows(engine, "customers") == 0
    assert await count_rows(engine, "audit_events") == 0


async def test_database_error_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = await make_channel(client)

    async def failing_audit(session: AsyncSession, *args: Any, **kwargs: Any) -> None:
        await session.execute(text("DO $$ BEGIN RAISE EXCEPTION 'disk full'; END $$"))

    # The failure comes after the customers and memberships were written in this transaction.
    monkeypatch.setattr(audit, "record_many", failing_audit)
    items = [{"external_ref": f"D{i}", "name": "x", "channel_id": channel["id"]} for i in range(5)]
    assert_problem(await client.post(URL, json={"items": items}), 503)
    assert await count_rows(engine, "customers") == 0
    assert await count_rows(engine, "customer_channel_memberships") == 0


async def test_a_full_batch_is_a_handful_of_statements(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    east = await make_channel(client, name="East")
    west = await make_channel(client, name="West")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    items = [
        {"external_ref": f"B{i:04d}", "name": f"客户{i}", "channel_id": east["id"]}
        for i in range(1000)
    ]
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        created = await send(client, items)
        creating = len(statements)
        for item in items[::2]:
            item["channel_id"] = west["id"]
        statements.clear()
        moved = await send(client, items)
        moving = len(statements)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)

    assert created["created"] == 1000
    assert (moved["updated"], moved["unchanged"]) == (500, 500)
    assert creating <= 10, statements
    assert moving <= 10, statements
    assert await count_rows(engine, "customers") == 1000
    assert await count_rows(engine, "customer_channel_memberships") == 1500
    assert await count_rows(engine, "customer_channel_memberships", "ended_at IS NULL") == 1000
    assert await count_rows(engine, "audit_events", "action = 'upsert'") == 1500

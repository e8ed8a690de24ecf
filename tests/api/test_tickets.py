import re
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.customer_rows import insert_channel, insert_customer
from tests.helpers import assert_problem, count_rows, walk

MISSING = "01970000-0000-7000-8000-000000000000"


@pytest.fixture
async def customer(engine: AsyncEngine) -> dict[str, str]:
    channel = await insert_channel(engine)
    customer = await insert_customer(engine, channel_id=channel)
    return {"id": str(customer), "channel_id": str(channel)}


async def open_ticket(client: httpx.AsyncClient, customer_id: str, **fields: Any) -> dict[str, Any]:
    body = {"customer_id": customer_id, "subject": "配送延迟", "kind": "complaint", **fields}
    response = await client.post("/v1/tickets", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def outbox(engine: AsyncEngine) -> list[tuple[str, dict[str, Any]]]:
    """The events written, each payload without the id of the request that wrote it (which
    every API write records: these tests send none, so it is a generated one)."""
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT type, payload FROM outbox_events ORDER BY id"))
        events = []
        for r in rows:
            payload = dict(r.payload)
            assert re.fullmatch(r"[0-9a-f]{32}", payload.pop("request_id")), r.payload
            events.append((r.type, payload))
        return events


async def written(engine: AsyncEngine) -> tuple[int, int, int]:
    return (
        await count_rows(engine, "tickets"),
        await count_rows(engine, "outbox_events"),
        await count_rows(engine, "audit_events"),
    )


async def test_create_get_update_delete(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    created = await open_ticket(
        client, customer["id"], priority="high", tags=["logistics"], external_id="hd-1"
    )
    assert created["channel_id"] == customer["channel_id"]
    assert (created["status"], created["version"]) == ("open", 1)
    assert created["resolved_at"] is None
    assert created["first_response_breached"] is False
    url = f"/v1/tickets/{created['id']}"

    got = await client.get(url)
    assert got.headers["etag"] == '"1"'
    assert got.json() == created

    patched = await client.patch(url, json={"assignee": "wang", "description": "late"})
    assert patched.status_code == 200, patched.text
    assert patched.headers["etag"] == '"2"'
    assert (patched.json()["assignee"], patched.json()["version"]) == ("wang", 2)

    assert (await client.delete(url)).status_code == 204
    assert_problem(await client.get(url), 404)
    assert_problem(await client.delete(url), 404)
    assert_problem(await client.patch(url, json={"assignee": "x"}), 404)

    payload = {"ids": [created["id"]], "customer_ids": [customer["id"]]}
    assert await outbox(engine) == [
        ("tickets.changed", {**payload, "action": "created"}),
        ("tickets.changed", {**payload, "action": "updated"}),
        ("tickets.deleted", {**payload, "action": "deleted"}),
    ]
    audit = (await client.get("/v1/audit-events", params={"resource_id": created["id"]})).json()
    assert [e["action"] for e in audit["items"]] == ["delete", "update", "create"]
    assert audit["items"][1]["before"]["assignee"] is None
    assert audit["items"][1]["after"]["assignee"] == "wang"


async def test_status_transitions_stamp_times(
    client: httpx.AsyncClient, customer: dict[str, str]
) -> None:
    ticket = await open_ticket(client, customer["id"])
    url = f"/v1/tickets/{ticket['id']}"

    async def move(status: str) -> dict[str, Any]:
        response = await client.patch(url, json={"status": status})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    resolved = await move("resolved")
    assert resolved["resolved_at"] is not None
    assert resolved["closed_at"] is None
    closed = await move("closed")
    assert closed["resolved_at"] == resolved["resolved_at"], "resolving again keeps the first time"
    assert closed["closed_at"] is not None
    still = await move("closed")
    assert still["closed_at"] == closed["closed_at"]
    reopened = await move("open")
    assert (reopened["resolved_at"], reopened["closed_at"]) == (None, None)

    closed_at_once = await open_ticket(client, customer["id"], status="closed")
    assert closed_at_once["resolved_at"] is not None
    assert closed_at_once["closed_at"] is not None
    pending = await open_ticket(client, customer["id"], status="pending")
    assert (pending["resolved_at"], pending["closed_at"]) == (None, None)


async def test_fields_and_explicit_channel(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    other = str(await insert_channel(engine, name="Online"))
    ticket = await open_ticket(
        client,
        customer["id"],
        channel_id=other,
        kind="incident",
        satisfaction=4,
        resolution="fixed",
        first_responded_at="2026-03-01T10:00:00+08:00",
    )
    assert ticket["channel_id"] == other
    assert ticket["first_responded_at"] == "2026-03-01T02:00:00Z"
    assert (ticket["satisfaction"], ticket["resolution"]) == (4, "fixed")
    cleared = await client.patch(
        f"/v1/tickets/{ticket['id']}", json={"satisfaction": None, "channel_id": None}
    )
    assert (cleared.json()["satisfaction"], cleared.json()["channel_id"]) == (None, None)
    lone = str(await insert_customer(engine))
    assert (await open_ticket(client, lone))["channel_id"] is None


async def test_if_match(client: httpx.AsyncClient, customer: dict[str, str]) -> None:
    ticket = await open_ticket(client, customer["id"])
    url = f"/v1/tickets/{ticket['id']}"
    first = await client.patch(url, json={"priority": "urgent"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200
    stale = await client.patch(url, json={"priority": "low"}, headers={"If-Match": '"1"'})
    assert assert_problem(stale, 412)["current_etag"] == '"2"'
    star = await client.patch(url, json={"assignee": "li"}, headers={"If-Match": "*"})
    assert star.status_code == 200
    current = (await client.get(url)).json()
    assert (current["priority"], current["version"]) == ("urgent", 3)


async def test_idempotency_key(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    body = {"customer_id": customer["id"], "subject": "x", "kind": "request"}
    headers = {"Idempotency-Key": "t-1"}
    first = await client.post("/v1/tickets", json=body, headers=headers)
    again = await client.post("/v1/tickets", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post("/v1/tickets", json={**body, "subject": "y"}, headers=headers)
    assert_problem(other, 422, "header.Idempotency-Key")
    assert await written(engine) == (1, 1, 1)


async def test_bad_input_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    base = {"customer_id": customer["id"], "subject": "x", "kind": "complaint"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"subject": "x", "kind": "complaint"}, "body.customer_id"),
        ({**base, "customer_id": "nope"}, "body.customer_id"),
        ({**base, "customer_id": MISSING}, "body.customer_id"),
        ({**base, "channel_id": MISSING}, "body.channel_id"),
        ({"customer_id": customer["id"], "kind": "complaint"}, "body.subject"),
        ({**base, "subject": "  "}, "body.subject"),
        ({**base, "subject": "x" * 301}, "body.subject"),
        ({**base, "kind": "praise"}, "body.kind"),
        ({**base, "priority": 3}, "body.priority"),
        ({**base, "status": "done"}, "body.status"),
        ({**base, "satisfaction": 6}, "body.satisfaction"),
        ({**base, "tags": "vip"}, "body.tags"),
        ({**base, "first_responded_at": "2026-03-01T10:00:00"}, "body.first_responded_at"),
        ({**base, "first_response_due_at": "2026-03-01T10:00:00Z"}, "body.first_response_due_at"),
        ({**base, "resolved_at": "2026-03-01T10:00:00Z"}, "body.resolved_at"),
        ({**base, "description": "a\x00b"}, "body.description"),
    ]
    for body, field in cases:
        assert_problem(await client.post("/v1/tickets", json=body), 422, field)
    malformed = await client.post(
        "/v1/tickets", content=b'{"subject": ', headers={"content-type": "application/json"}
    )
    assert_problem(malformed, 400)
    assert await written(engine) == (0, 0, 0)


async def test_patch_bad_input_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    ticket = await open_ticket(client, customer["id"])
    url = f"/v1/tickets/{ticket['id']}"
    for body, field in (
        ({"status": None}, "body.status"),
        ({"subject": None}, "body.subject"),
        ({"status": "done"}, "body.status"),
        ({"channel_id": MISSING}, "body.channel_id"),
        ({"customer_id": customer["id"]}, "body.customer_id"),
        ({"resolution_breached": True}, "body.resolution_breached"),
        ({"satisfaction": 0}, "body.satisfaction"),
    ):
        assert_problem(await client.patch(url, json=body), 422, field)
    assert_problem(await client.patch("/v1/tickets/nope", json={}), 422, "path.ticket_id")
    assert (await client.get(url)).json() == ticket
    assert await written(engine) == (1, 1, 1)


async def test_duplicate_external_id_is_409(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    first = await open_ticket(client, customer["id"], external_id="hd-9")
    body = {"customer_id": customer["id"], "subject": "y", "kind": "request", "external_id": "hd-9"}
    assert_problem(await client.post("/v1/tickets", json=body), 409, "body.external_id")
    second = await open_ticket(client, customer["id"])
    response = await client.patch(f"/v1/tickets/{second['id']}", json={"external_id": "hd-9"})
    assert_problem(response, 409, "body.external_id")
    assert (await client.get(f"/v1/tickets/{first['id']}")).json() == first
    assert await written(engine) == (2, 2, 2)


async def test_filters_sorting_pagination(
    client: httpx.AsyncClient, engine: AsyncEngine, customer: dict[str, str]
) -> None:
    other_customer = str(await insert_customer(engine))
    other_channel = str(await insert_channel(engine, name="Store"))
    a = await open_ticket(client, customer["id"], priority="urgent", assignee="li")
    b = await open_ticket(
        client, other_customer, kind="request", status="pending", channel_id=other_channel
    )
    c = await open_ticket(client, customer["id"], kind="incident", status="resolved")
    await client.patch(f"/v1/tickets/{a['id']}", json={"assignee": "li", "tags": ["x"]})

    async def ids(**params: Any) -> list[str]:
        return [t["id"] for t in await walk(client, "/v1/tickets", limit=1, **params)]

    assert await ids() == [c["id"], b["id"], a["id"]]
    assert await ids(sort="created_at") == [a["id"], b["id"], c["id"]]
    assert (await ids(sort="-updated_at"))[0] == a["id"]
    assert await ids(status="pending") == [b["id"]]
    assert await ids(priority="urgent") == [a["id"]]
    assert await ids(assignee="li") == [a["id"]]
    assert await ids(customer_id=customer["id"]) == [c["id"], a["id"]]
    assert await ids(channel_id=other_channel) == [b["id"]]
    assert await ids(kind="incident") == [c["id"]]
    assert await ids(status="closed") == []
    for params, field in (
        ({"status": "done"}, "query.status"),
        ({"sort": "priority"}, "query.sort"),
        ({"customer_id": "x"}, "query.customer_id"),
        ({"cursor": "garbage"}, "query.cursor"),
    ):
        assert_problem(await client.get("/v1/tickets", params=params), 422, field)

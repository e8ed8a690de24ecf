import asyncio
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.models.enums import Scope
from tests.conftest import KeyMaker
from tests.helpers import assert_problem, count_rows, walk

MISSING = "01970000-0000-7000-8000-000000000000"


async def make_channel(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "East Distribution", "type": "distributor", **fields}
    response = await client.post("/v1/channels", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def make_customer(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/customers", json={"name": "Zhang Min", **fields})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def history(client: httpx.AsyncClient, customer_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/customers/{customer_id}/channel-history")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_create_get_update_archive(client: httpx.AsyncClient) -> None:
    channel = await make_channel(client)
    response = await client.post(
        "/v1/customers",
        json={
            "external_ref": " CRM-1 ",
            "name": "张敏",
            "email": "zhang.min@example.com",
            "phone": "+86 138 0013 8000",
            "address": "上海市浦东新区",
            "owner": "li.wei",
            "channel_id": channel["id"],
            "value_tier": "A",
            "tags": ["vip", "华东"],
            "attributes": {"industry": "retail", "seats": 12},
            "birthday": "1988-04-12",
            "contract_end": "2027-06-30",
            "notes": "喜欢微信联系",
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/v1/customers/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert created["external_ref"] == "CRM-1"
    assert created["lifecycle_stage"] == "onboarding"
    assert created["channel_id"] == channel["id"]
    assert created["archived_at"] is None
    assert created["version"] == 1

    got = await client.get(f"/v1/customers/{created['id']}")
    assert got.status_code == 200
    assert got.headers["etag"] == '"1"'
    assert got.json() == created

    patched = await client.patch(
        f"/v1/customers/{created['id']}",
        json={"lifecycle_stage": "at_risk", "email": None, "tags": ["vip"]},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["lifecycle_stage"], body["email"], body["tags"]) == ("at_risk", None, ["vip"])
    assert body["version"] == 2
    assert patched.headers["etag"] == '"2"'
    assert body["updated_at"] >= created["updated_at"]

    deleted = await client.delete(f"/v1/customers/{created['id']}")
    assert deleted.status_code == 204
    still = await client.get(f"/v1/customers/{created['id']}")
    assert still.status_code == 200
    assert still.json()["archived_at"] is not None
    assert still.json()["version"] == 3
    again = await client.delete(f"/v1/customers/{created['id']}")
    assert again.status_code == 204
    assert (await client.get(f"/v1/customers/{created['id']}")).json()["version"] == 3

    assert (await client.get("/v1/customers")).json()["items"] == []
    listed = await client.get("/v1/customers", params={"include_archived": True})
    assert [c["id"] for c in listed.json()["items"]] == [created["id"]]


async def test_missing_customer_is_404(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get(f"/v1/customers/{MISSING}"),
        await client.get(f"/v1/customers/{MISSING}/channel-history"),
        await client.patch(f"/v1/customers/{MISSING}", json={"owner": "x"}),
        await client.delete(f"/v1/customers/{MISSING}"),
    ):
        assert_problem(response, 404)
    assert_problem(await client.get("/v1/customers/nope"), 422, "path.customer_id")


async def test_scopes(client_for: KeyMaker, client: httpx.AsyncClient) -> None:
    reader = await client_for(Scope.read)
    customer = await make_customer(client)
    assert (await reader.get(f"/v1/customers/{customer['id']}")).status_code == 200
    assert_problem(await reader.post("/v1/customers", json={"name": "x"}), 403)
    assert_problem(await reader.patch(f"/v1/customers/{customer['id']}", json={}), 403)
    assert_problem(await reader.delete(f"/v1/customers/{customer['id']}"), 403)
    assert_problem(await reader.post("/v1/customers/batch", json={"items": []}), 403)


async def test_channel_must_exist_and_be_active(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    archived = await make_channel(client, name="Old")
    await client.delete(f"/v1/channels/{archived['id']}")
    for channel_id, message in ((MISSING, "no channel"), (archived["id"], "archived")):
        body = assert_problem(
            await client.post("/v1/customers", json={"name": "x", "channel_id": channel_id}),
            422,
            "body.channel_id",
        )
        assert message in body["errors"][0]["message"]
    assert await count_rows(engine, "customers") == 0
    assert await count_rows(engine, "customer_channel_memberships") == 0

    customer = await make_customer(client)
    url = f"/v1/customers/{customer['id']}"
    for channel_id in (MISSING, archived["id"]):
        assert_problem(
            await client.patch(url, json={"channel_id": channel_id}), 422, "body.channel_id"
        )
    assert (await client.get(url)).json()["version"] == 1
    assert await count_rows(engine, "customer_channel_memberships") == 0


async def test_channel_history_follows_every_move(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    east = await make_channel(client, name="East")
    west = await make_channel(client, name="West")
    customer = await make_customer(client, channel_id=east["id"])
    url = f"/v1/customers/{customer['id']}"
    first = await history(client, customer["id"])
    assert [(m["channel_id"], m["channel_name"], m["ended_at"]) for m in first] == [
        (east["id"], "East", None)
    ]

    await client.patch(url, json={"channel_id": west["id"]})
    await client.patch(url, json={"owner": "wang"})  # not a move: history unchanged
    await client.patch(url, json={"channel_id": west["id"]})  # same channel: not a move
    await client.patch(url, json={"channel_id": None})
    await client.patch(url, json={"channel_id": east["id"]})

    moves = await history(client, customer["id"])
    assert [(m["channel_id"], m["ended_at"] is None) for m in moves] == [
        (east["id"], True),
        (west["id"], False),
        (east["id"], False),
    ]
    # West ended when the channel was cleared; the first East ended as West started.
    assert moves[2]["ended_at"] == moves[1]["started_at"]
    assert moves[1]["ended_at"] < moves[0]["started_at"]
    assert await count_rows(engine, "customer_channel_memberships", "ended_at IS NULL") == 1
    assert (await client.get(url)).json()["channel_id"] == east["id"]


async def test_staying_in_an_archived_channel_is_allowed(client: httpx.AsyncClient) -> None:
    channel = await make_channel(client)
    customer = await make_customer(client, channel_id=channel["id"])
    await client.delete(f"/v1/channels/{channel['id']}")
    url = f"/v1/customers/{customer['id']}"
    response = await client.patch(url, json={"channel_id": channel["id"], "owner": "li"})
    assert response.status_code == 200, response.text
    assert len(await history(client, customer["id"])) == 1


async def test_if_match_rejects_stale_write(client: httpx.AsyncClient) -> None:
    customer = await make_customer(client)
    url = f"/v1/customers/{customer['id']}"
    first = await client.patch(url, json={"value_tier": "A"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200
    stale = await client.patch(url, json={"value_tier": "C"}, headers={"If-Match": '"1"'})
    assert assert_problem(stale, 412)["current_etag"] == '"2"'
    assert (await client.get(url)).json()["value_tier"] == "A"
    star = await client.patch(url, json={"value_tier": "B"}, headers={"If-Match": "*"})
    assert star.status_code == 200


async def test_patch_without_changes_keeps_version(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    customer = await make_customer(client, owner="li", tags=["a"])
    url = f"/v1/customers/{customer['id']}"
    for body in ({}, {"owner": "li", "tags": ["a"], "name": " Zhang Min "}):
        response = await client.patch(url, json=body)
        assert response.status_code == 200, response.text
        assert response.json() == customer
        assert response.headers["etag"] == '"1"'
    assert await count_rows(engine, "audit_events", "action = 'update'") == 0


async def test_idempotent_create_replays(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    channel = await make_channel(client)
    body = {"name": "李娜", "channel_id": channel["id"]}
    headers = {"Idempotency-Key": "cust-1"}
    first = await client.post("/v1/customers", json=body, headers=headers)
    again = await client.post("/v1/customers", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await count_rows(engine, "customers") == 1
    assert await count_rows(engine, "customer_channel_memberships") == 1
    other = await client.post("/v1/customers", json={"name": "x"}, headers=headers)
    assert_problem(other, 422, "header.Idempotency-Key")


async def test_create_bad_input_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    cases: list[tuple[Any, str]] = [
        ({"email": "a@b.co"}, "body.name"),
        ({"name": ""}, "body.name"),
        ({"name": "   "}, "body.name"),
        ({"name": 42}, "body.name"),
        ({"name": "x" * 201}, "body.name"),
        ({"name": "x", "email": "not-an-email"}, "body.email"),
        ({"name": "x", "email": "a@b"}, "body.email"),
        ({"name": "x", "phone": "call me"}, "body.phone"),
        ({"name": "x", "value_tier": "D"}, "body.value_tier"),
        ({"name": "x", "lifecycle_stage": "gone"}, "body.lifecycle_stage"),
        ({"name": "x", "tags": "vip"}, "body.tags"),
        ({"name": "x", "tags": [""]}, "body.tags.0"),
        ({"name": "x", "attributes": [1]}, "body.attributes"),
        ({"name": "x", "birthday": "someday"}, "body.birthday"),
        ({"name": "x", "birthday": "2999-01-01"}, "body.birthday"),
        ({"name": "x", "channel_id": "not-a-uuid"}, "body.channel_id"),
        ({"name": "x", "colour": "red"}, "body.colour"),
        ({"name": "x", "version": 5}, "body.version"),
        ({"name": "x\u0000y"}, "body.name"),
        ({"name": "x", "attributes": {"k": "a\u0000"}}, "body.attributes"),
        ({"name": "x", "lifecycle_stage": None}, "body.lifecycle_stage"),
        ([{"name": "x"}], "body"),
    ]
    for body, field in cases:
        assert_problem(await client.post("/v1/customers", json=body), 422, field)
    malformed = await client.post(
        "/v1/customers", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert_problem(malformed, 400)
    assert await count_rows(engine, "customers") == 0
    assert await count_rows(engine, "audit_events") == 0


async def test_patch_bad_input_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    customer = await make_customer(client, email="a@example.com")
    url = f"/v1/customers/{customer['id']}"
    cases: list[tuple[Any, str]] = [
        ({"name": None}, "body.name"),
        ({"tags": None}, "body.tags"),
        ({"email": "nope"}, "body.email"),
        ({"value_tier": 1}, "body.value_tier"),
        ({"id": MISSING}, "body.id"),
        ({"archived_at": None}, "body.archived_at"),
        ({"contract_end": "next year"}, "body.contract_end"),
    ]
    for body, field in cases:
        assert_problem(await client.patch(url, json=body), 422, field)
    assert_problem(
        await client.patch(url, content=b"{", headers={"content-type": "application/json"}), 400
    )
    assert (await client.get(url)).json() == customer
    assert await count_rows(engine, "audit_events", "action = 'update'") == 0


async def test_duplicate_external_ref_is_409(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await make_customer(client, external_ref="CRM-9")
    response = await client.post("/v1/customers", json={"name": "y", "external_ref": "CRM-9"})
    assert_problem(response, 409, "body.external_ref")
    other = await make_customer(client, external_ref="CRM-10")
    patched = await client.patch(f"/v1/customers/{other['id']}", json={"external_ref": "CRM-9"})
    assert_problem(patched, 409, "body.external_ref")
    assert await count_rows(engine, "customers") == 2
    assert await count_rows(engine, "customers", "external_ref = 'CRM-10'") == 1


async def test_filters_and_search(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    east = await make_channel(client, name="East")
    a = await make_customer(
        client,
        name="杭州西湖贸易有限公司",
        channel_id=east["id"],
        owner="li",
        value_tier="A",
        lifecycle_stage="active",
        tags=["vip", "华东"],
    )
    b = await make_customer(
        client, name="Northwind Traders", external_ref="NW-100", value_tier="B", tags=["smb"]
    )
    c = await make_customer(client, name="Contoso 50% Off", lifecycle_stage="at_risk")
    archived = await make_customer(client, name="杭州旧客户", owner="li")
    await client.delete(f"/v1/customers/{archived['id']}")

    async def ids(**params: Any) -> set[str]:
        return {x["id"] for x in await walk(client, "/v1/customers", **params)}

    assert await ids() == {a["id"], b["id"], c["id"]}
    assert await ids(channel_id=east["id"]) == {a["id"]}
    assert await ids(owner="li") == {a["id"]}
    assert await ids(owner="li", include_archived=True) == {a["id"], archived["id"]}
    assert await ids(tier="B") == {b["id"]}
    assert await ids(lifecycle_stage="at_risk") == {c["id"]}
    assert await ids(tag="华东") == {a["id"]}
    assert await ids(tag="vip", tier="A", owner="li") == {a["id"]}
    assert await ids(q="杭州") == {a["id"]}
    assert await ids(q="西湖贸易") == {a["id"]}
    assert await ids(q="杭州", include_archived=True) == {a["id"], archived["id"]}
    assert await ids(q="northWIND") == {b["id"]}
    assert await ids(q="nw-1") == {b["id"]}
    assert await ids(q="50%") == {c["id"]}
    assert await ids(q="%") == {c["id"]}
    assert await ids(q="_") == set()
    assert await ids(q="上海") == set()

    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE customers SET created_at = '2024-01-15T00:00:00Z' WHERE id = :id"),
            {"id": b["id"]},
        )
    assert await ids(created_before="2025-01-01T00:00:00Z") == {b["id"]}
    assert await ids(created_after="2025-01-01T00:00:00+08:00") == {a["id"], c["id"]}
    assert await ids(
        created_after="2024-01-15T00:00:00Z", created_before="2024-01-16T00:00:00Z"
    ) == {b["id"]}


async def test_list_bad_query(client: httpx.AsyncClient) -> None:
    for params, field in (
        ({"tier": "Z"}, "query.tier"),
        ({"lifecycle_stage": "x"}, "query.lifecycle_stage"),
        ({"channel_id": "x"}, "query.channel_id"),
        ({"created_after": "2025-01-01T00:00:00"}, "query.created_after"),
        ({"created_after": "yesterday"}, "query.created_after"),
        (
            {"created_after": "2025-02-01T00:00:00Z", "created_before": "2025-01-01T00:00:00Z"},
            "query.created_before",
        ),
        ({"sort": "email"}, "query.sort"),
        ({"limit": 0}, "query.limit"),
        ({"cursor": "garbage"}, "query.cursor"),
        ({"q": "x" * 201}, "query.q"),
    ):
        assert_problem(await client.get("/v1/customers", params=params), 422, field)


async def test_pagination_walk(client: httpx.AsyncClient) -> None:
    for i in range(23):
        await make_customer(client, name=f"客户 {i:02d}")
    everyone = await walk(client, "/v1/customers", limit=100)
    assert len(everyone) == 23
    for sort in ("created_at", "-created_at", "name", "-name", "updated_at", "-updated_at"):
        seen = await walk(client, "/v1/customers", limit=5, sort=sort)
        assert len(seen) == 23, sort
        assert len({c["id"] for c in seen}) == 23, sort
        key = sort.lstrip("-")
        values = [(c[key], c["id"]) for c in seen]
        assert values == sorted(values, reverse=sort.startswith("-")), sort
    default = await walk(client, "/v1/customers", limit=4)
    assert [c["id"] for c in default] == [c["id"] for c in everyone]
    assert default[0]["name"] == "客户 22"


async def test_walk_is_stable_under_inserts(client: httpx.AsyncClient) -> None:
    for i in range(20):
        await make_customer(client, name=f"C{i:02d}")
    before = {c["id"] for c in await walk(client, "/v1/customers", limit=100)}
    inserting = asyncio.gather(*(make_customer(client, name=f"late{i}") for i in range(10)))
    seen = [c["id"] for c in await walk(client, "/v1/customers", limit=6, sort="name")]
    await inserting
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


async def test_writes_are_audited(client: httpx.AsyncClient) -> None:
    customer = await make_customer(client)
    await client.patch(f"/v1/customers/{customer['id']}", json={"owner": "wang"})
    await client.delete(f"/v1/customers/{customer['id']}")
    events = (await client.get("/v1/audit-events", params={"resource_id": customer["id"]})).json()[
        "items"
    ]
    assert [e["action"] for e in events] == ["archive", "update", "create"]
    assert {e["resource_type"] for e in events} == {"customer"}
    archive, update, create = events
    assert create["before"] is None
    assert create["after"]["name"] == "Zhang Min"
    assert (update["before"]["owner"], update["after"]["owner"]) == (None, "wang")
    assert update["after"]["version"] == 2
    assert archive["before"]["archived_at"] is None
    assert archive["after"]["archived_at"] is not None
    assert update["actor_name"] == "test"

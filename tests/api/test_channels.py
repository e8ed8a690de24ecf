import asyncio
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import assert_problem, count_rows, walk


async def make_channel(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "East Distribution", "type": "distributor", **fields}
    response = await client.post("/v1/channels", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_create_get_update_archive(client: httpx.AsyncClient) -> None:
    created = await make_channel(client, external_ref="CH-1", tags=["vip"], region="华东")
    assert created["status"] == "active"
    assert created["version"] == 1

    got = await client.get(f"/v1/channels/{created['id']}")
    assert got.status_code == 200
    assert got.headers["etag"] == '"1"'
    assert got.json() == created

    patched = await client.patch(
        f"/v1/channels/{created['id']}", json={"owner": "li.wei", "region": None}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["owner"] == "li.wei"
    assert patched.json()["region"] is None
    assert patched.json()["version"] == 2
    assert patched.headers["etag"] == '"2"'

    deleted = await client.delete(f"/v1/channels/{created['id']}")
    assert deleted.status_code == 204
    still = await client.get(f"/v1/channels/{created['id']}")
    assert still.json()["archived_at"] is not None
    listed = await client.get("/v1/channels")
    assert listed.json()["items"] == []
    with_archived = await client.get("/v1/channels", params={"include_archived": True})
    assert [c["id"] for c in with_archived.json()["items"]] == [created["id"]]


async def test_if_match_rejects_stale_write(client: httpx.AsyncClient) -> None:
    channel = await make_channel(client)
    url = f"/v1/channels/{channel['id']}"
    first = await client.patch(url, json={"tier": "core"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200
    stale = await client.patch(url, json={"tier": "growth"}, headers={"If-Match": '"1"'})
    body = assert_problem(stale, 412)
    assert body["current_etag"] == '"2"'
    assert (await client.get(url)).json()["tier"] == "core"


async def test_bad_input_writes_nothing(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    cases: list[tuple[Any, int, tuple[str, ...]]] = [
        ({"type": "distributor"}, 422, ("body.name",)),
        ({"name": "x", "type": "warehouse"}, 422, ("body.type",)),
        ({"name": "x", "type": "agent", "tags": "vip"}, 422, ("body.tags",)),
        ({"name": "x", "type": "agent", "colour": "red"}, 422, ("body.colour",)),
        (
            {
                "name": "x",
                "type": "agent",
                "contract_start": "2026-02-01",
                "contract_end": "2026-01-01",
            },
            422,
            ("body",),
        ),
        ({"name": "", "type": "agent"}, 422, ("body.name",)),
    ]
    for body, status, fields in cases:
        assert_problem(await client.post("/v1/channels", json=body), status, *fields)
    malformed = await client.post(
        "/v1/channels", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert_problem(malformed, 400)
    assert await count_rows(engine, "channels") == 0
    assert await count_rows(engine, "audit_events") == 0


async def test_patch_bad_input(client: httpx.AsyncClient) -> None:
    channel = await make_channel(client)
    url = f"/v1/channels/{channel['id']}"
    assert_problem(await client.patch(url, json={"name": None}), 422, "body.name")
    assert_problem(
        await client.patch(
            url, json={"contract_start": "2030-01-01", "contract_end": "2029-01-01"}
        ),
        422,
        "body.contract_end",
    )
    assert_problem(
        await client.patch(url, json={"contract_end": "yesterday"}), 422, "body.contract_end"
    )
    assert_problem(await client.patch("/v1/channels/not-a-uuid", json={}), 422, "path.channel_id")
    missing = "01970000-0000-7000-8000-000000000000"
    assert_problem(await client.patch(f"/v1/channels/{missing}", json={"owner": "x"}), 404)
    assert (await client.get(url)).json()["version"] == 1


async def test_duplicate_external_ref_is_409(client: httpx.AsyncClient) -> None:
    await make_channel(client, external_ref="CH-9")
    response = await client.post(
        "/v1/channels", json={"name": "y", "type": "agent", "external_ref": "CH-9"}
    )
    assert_problem(response, 409, "body.external_ref")


async def test_filters_and_search(client: httpx.AsyncClient) -> None:
    a = await make_channel(
        client, name="杭州代理商", type="agent", tier="core", owner="li", tags=["east"]
    )
    b = await make_channel(
        client, name="Online Store", type="online", region="North", external_ref="WEB-1"
    )
    await make_channel(client, name="Reseller 100%", type="reseller", tier="growth")

    async def ids(**params: Any) -> set[str]:
        return {c["id"] for c in await walk(client, "/v1/channels", **params)}

    assert await ids(type="agent") == {a["id"]}
    assert await ids(tier="core") == {a["id"]}
    assert await ids(owner="li") == {a["id"]}
    assert await ids(tag="east") == {a["id"]}
    assert await ids(region="North") == {b["id"]}
    assert await ids(q="杭州") == {a["id"]}
    assert await ids(q="web-") == {b["id"]}
    assert len(await ids(q="100%")) == 1
    assert await ids(q="%") != {a["id"], b["id"]}


async def test_pagination_walk_is_stable_under_inserts(client: httpx.AsyncClient) -> None:
    for i in range(25):
        await make_channel(client, name=f"C{i:02d}")
    before = {c["id"] for c in await walk(client, "/v1/channels", limit=100)}

    seen: list[str] = []
    cursor = None
    inserting = asyncio.gather(*(make_channel(client, name=f"late{i}") for i in range(10)))
    while True:
        params: dict[str, Any] = {"limit": 7, "sort": "name"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/channels", params=params)).json()
        seen.extend(c["id"] for c in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        await asyncio.sleep(0)
    await inserting
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert before <= set(seen), "a row that existed before the walk was skipped"


async def test_sorting(client: httpx.AsyncClient) -> None:
    for name in ("b", "c", "a"):
        await make_channel(client, name=name)
    names = [c["name"] for c in await walk(client, "/v1/channels", sort="name", limit=2)]
    assert names == ["a", "b", "c"]
    names = [c["name"] for c in await walk(client, "/v1/channels", sort="-name", limit=2)]
    assert names == ["c", "b", "a"]
    assert_problem(await client.get("/v1/channels", params={"sort": "colour"}), 422, "query.sort")


async def test_malformed_cursor(client: httpx.AsyncClient) -> None:
    for cursor in ("garbage", "W10", "WyJuYW1lIiwgWzFdXQ"):
        assert_problem(
            await client.get("/v1/channels", params={"cursor": cursor}), 422, "query.cursor"
        )
    assert_problem(await client.get("/v1/channels", params={"limit": 101}), 422, "query.limit")


async def test_writes_are_audited(client: httpx.AsyncClient) -> None:
    channel = await make_channel(client)
    await client.patch(f"/v1/channels/{channel['id']}", json={"owner": "wang"})
    await client.delete(f"/v1/channels/{channel['id']}")
    events = (await client.get("/v1/audit-events", params={"resource_id": channel["id"]})).json()[
        "items"
    ]
    assert [e["action"] for e in events] == ["archive", "update", "create"]
    update = events[1]
    assert update["before"]["owner"] is None
    assert update["after"]["owner"] == "wang"
    assert update["actor_name"] == "test"

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import assert_problem, count_rows


async def test_same_key_same_body_replays(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    body = {"name": "Replay", "type": "agent"}
    headers = {"Idempotency-Key": "k-1"}
    first = await client.post("/v1/channels", json=body, headers=headers)
    again = await client.post("/v1/channels", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await count_rows(engine, "channels") == 1


async def test_same_key_other_body_is_422(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    headers = {"Idempotency-Key": "k-2"}
    await client.post("/v1/channels", json={"name": "A", "type": "agent"}, headers=headers)
    other = await client.post("/v1/channels", json={"name": "B", "type": "agent"}, headers=headers)
    assert_problem(other, 422, "header.Idempotency-Key")
    assert await count_rows(engine, "channels") == 1


async def test_keys_are_per_api_key(client: httpx.AsyncClient, client_for: object) -> None:
    headers = {"Idempotency-Key": "shared"}
    body = {"name": "A", "type": "agent"}
    first = await client.post("/v1/channels", json=body, headers=headers)
    without = await client.post("/v1/channels", json=body)
    assert first.json()["id"] != without.json()["id"]


async def test_failed_create_is_not_remembered(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "k-3"}
    bad = await client.post("/v1/channels", json={"name": "A"}, headers=headers)
    assert bad.status_code == 422
    good = await client.post("/v1/channels", json={"name": "A", "type": "agent"}, headers=headers)
    assert good.status_code == 201


async def test_a_body_beyond_64_bit_integers_replays(client: httpx.AsyncClient) -> None:
    # Valid JSON that orjson cannot encode: the request's fingerprint must not fail on it.
    body = {"name": "Big", "type": "agent", "attributes": {"n": 2**70, "m": [-(2**64)]}}
    headers = {"Idempotency-Key": "k-big"}
    first = await client.post("/v1/channels", json=body, headers=headers)
    again = await client.post("/v1/channels", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["attributes"] == body["attributes"]

import httpx

from services.core.models.enums import Scope
from tests.conftest import KeyMaker
from tests.helpers import assert_problem


async def test_missing_and_unknown_keys_are_401(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/v1/channels")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    wrong = await anonymous.get("/v1/channels", headers={"Authorization": "Bearer rk_nope"})
    assert_problem(wrong, 401)


async def test_scopes(client_for: KeyMaker) -> None:
    reader = await client_for(Scope.read)
    writer = await client_for(Scope.write)
    assert (await reader.get("/v1/channels")).status_code == 200
    assert_problem(await reader.post("/v1/channels", json={"name": "x", "type": "agent"}), 403)
    assert (
        await writer.post("/v1/channels", json={"name": "x", "type": "agent"})
    ).status_code == 201
    assert (await writer.get("/v1/channels")).status_code == 200
    assert_problem(await writer.get("/v1/api-keys"), 403)
    assert_problem(await writer.get("/v1/audit-events"), 403)


async def test_api_key_lifecycle(client: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    created = await client.post("/v1/api-keys", json={"name": "erp", "scopes": ["read"]})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("rk_")
    assert created.json()["prefix"] == key[:10]

    listed = (await client.get("/v1/api-keys")).json()["items"]
    erp = next(k for k in listed if k["name"] == "erp")
    assert "key" not in erp
    headers = {"Authorization": f"Bearer {key}"}
    assert (await anonymous.get("/v1/channels", headers=headers)).status_code == 200

    assert (await client.delete(f"/v1/api-keys/{erp['id']}")).status_code == 204
    assert_problem(await anonymous.get("/v1/channels", headers=headers), 401)
    assert erp["id"] not in {k["id"] for k in (await client.get("/v1/api-keys")).json()["items"]}


async def test_api_key_bad_input(client: httpx.AsyncClient) -> None:
    assert_problem(
        await client.post("/v1/api-keys", json={"name": "x", "scopes": []}), 422, "body.scopes"
    )
    assert_problem(
        await client.post("/v1/api-keys", json={"name": "x", "scopes": ["root"]}),
        422,
        "body.scopes.0",
    )
    assert_problem(await client.delete("/v1/api-keys/01970000-0000-7000-8000-000000000000"), 404)


async def test_health_is_open(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/healthz")).json() == {
        "status": "ok",
        "checks": {},
        "worker": None,
    }
    ready = await anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}

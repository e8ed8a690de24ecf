"""API keys beyond scopes: expiry, their own rate limit, `last_used_at` written at most once a
minute, and revocation reaching every API process within the key cache's lifetime."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import create_app
from services.core.api_keys import create_api_key, hash_key
from services.core.config import Settings
from services.core.db import session_scope
from services.core.models.enums import Scope
from tests.helpers import assert_problem, count_rows


async def make_key(app: FastAPI, **fields: Any) -> tuple[str, str]:
    """A read key made in the database: (its id, the key)."""
    async with session_scope(app.state.sessionmaker) as session:
        new = await create_api_key(session, "hardening", {Scope.read}, **fields)
    return str(new.record.id), new.key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def key_row(engine: AsyncEngine, key_id: str) -> Any:
    async with engine.connect() as conn:
        query = text("SELECT * FROM api_keys WHERE id = :id")
        return (await conn.execute(query, {"id": key_id})).one()


async def execute(engine: AsyncEngine, sql: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


async def test_create_with_expiry_and_an_own_rate_limit(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = await client.post(
        "/v1/api-keys",
        json={
            "name": "bi",
            "scopes": ["read"],
            "expires_at": expires.isoformat(),
            "rate_limit_per_minute": 1,
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert datetime.fromisoformat(body["expires_at"]) == expires
    assert (body["rate_limit_per_minute"], body["last_used_at"]) == (1, None)
    row = await key_row(engine, body["id"])
    assert (row.expires_at, row.rate_limit_per_minute) == (expires, 1)

    first = await anonymous.get("/v1/channels", headers=bearer(body["key"]))
    assert first.status_code == 200
    assert first.headers["ratelimit-limit"] == "1"
    assert_problem(await anonymous.get("/v1/channels", headers=bearer(body["key"])), 429)
    listed = (await client.get("/v1/api-keys")).json()["items"]
    shown = next(k for k in listed if k["id"] == body["id"])
    assert (shown["expires_at"], shown["rate_limit_per_minute"]) == (body["expires_at"], 1)
    assert shown["last_used_at"] is not None


async def test_bad_key_input_names_the_field_and_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    before = await count_rows(engine, "api_keys")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"expires_at": past}, "body.expires_at"),
        ({"expires_at": "2030-01-01T00:00:00"}, "body.expires_at"),  # no zone
        ({"expires_at": "soon"}, "body.expires_at"),
        ({"rate_limit_per_minute": -1}, "body.rate_limit_per_minute"),
        ({"rate_limit_per_minute": 10**9}, "body.rate_limit_per_minute"),
        ({"rate_limit_per_minute": "many"}, "body.rate_limit_per_minute"),
    ]
    for fields, field in cases:
        body = {"name": "x", "scopes": ["read"], **fields}
        assert_problem(await client.post("/v1/api-keys", json=body), 422, field)
    assert await count_rows(engine, "api_keys") == before


async def test_an_expired_key_is_401_saying_so(
    app: FastAPI, anonymous: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    gone = datetime(2026, 1, 1, tzinfo=UTC)
    _, expired = await make_key(app, expires_at=gone)
    body = assert_problem(await anonymous.get("/v1/channels", headers=bearer(expired)), 401)
    assert body["detail"].startswith("The API key expired at 2026-01-01T00:00:00+00:00")

    key_id, key = await make_key(app, expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert (await anonymous.get("/v1/channels", headers=bearer(key))).status_code == 200
    # Expiry is checked on every request, cached key or not.
    await execute(
        engine,
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :id",
        id=key_id,
    )
    app.state.key_cache.clear()
    body = assert_problem(await anonymous.get("/v1/channels", headers=bearer(key)), 401)
    assert "expired" in body["detail"]


async def test_unknown_and_revoked_keys_are_told_apart(
    app: FastAPI, client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    key_id, key = await make_key(app)
    assert (await client.delete(f"/v1/api-keys/{key_id}")).status_code == 204
    revoked = assert_problem(await anonymous.get("/v1/channels", headers=bearer(key)), 401)
    assert revoked["detail"] == "The API key was revoked."
    unknown = assert_problem(await anonymous.get("/v1/channels", headers=bearer("rk_x")), 401)
    assert unknown["detail"] == "The API key is unknown."


async def test_last_used_at_is_written_at_most_once_a_minute(
    app: FastAPI, anonymous: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    key_id, key = await make_key(app)
    assert (await key_row(engine, key_id)).last_used_at is None
    assert (await anonymous.get("/v1/channels", headers=bearer(key))).status_code == 200
    first = (await key_row(engine, key_id)).last_used_at
    assert first is not None

    # This process wrote it a moment ago: it does not write again, even if the row is old.
    await execute(
        engine,
        "UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = :id",
        id=key_id,
    )
    old = (await key_row(engine, key_id)).last_used_at
    await anonymous.get("/v1/channels", headers=bearer(key))
    assert (await key_row(engine, key_id)).last_used_at == old

    # Another process (a fresh memory) writes only when the stored time is a minute old.
    await execute(
        engine,
        "UPDATE api_keys SET last_used_at = now() - interval '30 seconds' WHERE id = :id",
        id=key_id,
    )
    recent = (await key_row(engine, key_id)).last_used_at
    app.state.key_cache.clear()
    await anonymous.get("/v1/channels", headers=bearer(key))
    assert (await key_row(engine, key_id)).last_used_at == recent

    await execute(
        engine,
        "UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = :id",
        id=key_id,
    )
    app.state.key_cache.clear()
    await anonymous.get("/v1/channels", headers=bearer(key))
    assert (await key_row(engine, key_id)).last_used_at > recent


@asynccontextmanager
async def second_process(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another API process on the same database: its own key cache."""
    other = create_app(settings)
    async with other.router.lifespan_context(other):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other), base_url="http://test"
        ) as http:
            yield http


async def test_revocation_reaches_another_process_within_the_cache_lifetime(
    app: FastAPI, client: httpx.AsyncClient, anonymous: httpx.AsyncClient, settings: Settings
) -> None:
    assert settings.api_key_cache_seconds <= 1.0
    key_id, key = await make_key(app)
    async with second_process(settings) as elsewhere:
        # Both processes have verified the key and hold it in their caches.
        assert (await anonymous.get("/v1/channels", headers=bearer(key))).status_code == 200
        assert (await elsewhere.get("/v1/channels", headers=bearer(key))).status_code == 200
        hit, principal = app.state.key_cache.get(hash_key(key))
        assert hit
        assert principal is not None

        assert (await client.delete(f"/v1/api-keys/{key_id}")).status_code == 204
        # The process that revoked it refuses it at once.
        assert_problem(await anonymous.get("/v1/channels", headers=bearer(key)), 401)
        # The other, once its cached verdict is older than the cache lifetime (a second).
        await asyncio.sleep(settings.api_key_cache_seconds + 0.05)
        refused = await elsewhere.get("/v1/channels", headers=bearer(key))
        assert_problem(refused, 401)
        assert refused.json()["detail"] == "The API key was revoked."


async def test_an_idempotent_key_create_replays_without_storing_the_key(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = {"Idempotency-Key": "key-1"}
    body = {"name": "erp", "scopes": ["write"]}
    first = await client.post("/v1/api-keys", json=body, headers=headers)
    again = await client.post("/v1/api-keys", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    async with engine.connect() as conn:
        kept = (
            await conn.execute(text("SELECT CAST(response_body AS text) FROM idempotency_records"))
        ).scalar_one()
    assert first.json()["key"] not in kept
    assert not orjson.loads(kept)["key"].startswith("rk_"), "stored encrypted"

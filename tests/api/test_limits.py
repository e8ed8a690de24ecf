"""Per-key rate limits (Redis, failing open) and the request body limit, against real PostgreSQL
and Redis: the 429 and 413 answers, their headers, and what still gets through."""

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from redis.asyncio import Redis

from services.api.app import create_app
from services.api.ratelimit import RateLimiter
from services.core.api_keys import create_api_key
from services.core.config import Settings
from services.core.db import session_scope
from services.core.models.enums import Scope
from tests.api.import_uploads import post_import, uploaded
from tests.helpers import assert_problem, count_rows

DEAD_REDIS = "redis://127.0.0.1:1/0"
CHANNEL = {"name": "渠道 A", "type": "agent"}
RATE_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


@asynccontextmanager
async def another_app(settings: Settings, **changes: Any) -> AsyncIterator[FastAPI]:
    """A second API process on the same database, with these settings changed."""
    application = create_app(settings.model_copy(update=changes))
    async with application.router.lifespan_context(application):
        yield application


async def key_for(
    application: FastAPI, *scopes: Scope, rate_limit_per_minute: int | None = None
) -> str:
    async with session_scope(application.state.sessionmaker) as session:
        new = await create_api_key(
            session, "limits", set(scopes), rate_limit_per_minute=rate_limit_per_minute
        )
    return new.key


def client_of(application: FastAPI, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application),
        base_url="http://test",
        headers={"Authorization": f"Bearer {key}"},
    )


def rate(response: httpx.Response) -> tuple[int, int, int]:
    limit, remaining, reset = (int(response.headers[name]) for name in RATE_HEADERS)
    return limit, remaining, reset


# Rate limits


async def test_past_the_limit_is_429_with_retry_after_and_headers_on_every_answer(
    app: FastAPI, engine: Any
) -> None:
    key = await key_for(app, Scope.write, rate_limit_per_minute=2)
    async with client_of(app, key) as writer:
        created = await writer.post("/v1/channels", json=CHANNEL)
        assert created.status_code == 201, created.text
        assert rate(created)[:2] == (2, 1)
        assert 0 < rate(created)[2] <= 60
        missing = await writer.get(f"/v1/channels/{uuid.uuid4()}")
        assert_problem(missing, 404)
        assert rate(missing)[:2] == (2, 0), "errors count and carry the headers too"
        assert "retry-after" not in missing.headers

        refused = await writer.post("/v1/channels", json=CHANNEL)
        body = assert_problem(refused, 429)
        assert body["limit"] == 2
        assert "2 requests a minute" in body["detail"]
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 30  # one request every 30 s refills a quota of 2 a minute
        assert body["retry_after"] == retry_after
        assert rate(refused)[:2] == (2, 0)
        assert 0 < rate(refused)[2] <= 60
    assert await count_rows(engine, "channels") == 1, "the refused write wrote nothing"


async def test_keys_have_separate_quotas_and_the_default_applies_without_an_own_limit(
    app: FastAPI, settings: Settings
) -> None:
    spent = await key_for(app, Scope.read, rate_limit_per_minute=1)
    other = await key_for(app, Scope.read)
    async with client_of(app, spent) as first, client_of(app, other) as second:
        assert (await first.get("/v1/channels")).status_code == 200
        assert_problem(await first.get("/v1/channels"), 429)
        fresh = await second.get("/v1/channels")
        assert fresh.status_code == 200
        limit, remaining, _ = rate(fresh)
        assert limit == settings.rate_limit_per_minute == 6000
        assert remaining == limit - 1


async def test_zero_means_no_limit_for_the_key_or_the_deployment(
    app: FastAPI, settings: Settings
) -> None:
    unlimited = await key_for(app, Scope.read, rate_limit_per_minute=0)
    async with client_of(app, unlimited) as reader:
        for _ in range(3):
            answer = await reader.get("/v1/channels")
            assert answer.status_code == 200
            assert not set(RATE_HEADERS) & set(answer.headers)
    async with another_app(settings, rate_limit_per_minute=0) as off:
        async with client_of(off, await key_for(off, Scope.read)) as reader:
            answer = await reader.get("/v1/channels")
            assert answer.status_code == 200
            assert not set(RATE_HEADERS) & set(answer.headers)
        async with client_of(off, await key_for(off, Scope.read, rate_limit_per_minute=1)) as own:
            assert (await own.get("/v1/channels")).status_code == 200
            assert_problem(await own.get("/v1/channels"), 429)


async def test_api_processes_share_a_key_s_quota(app: FastAPI, settings: Settings) -> None:
    key = await key_for(app, Scope.read, rate_limit_per_minute=2)
    async with another_app(settings) as second:
        async with client_of(app, key) as one, client_of(second, key) as two:
            assert rate(await one.get("/v1/channels"))[1] == 1
            assert rate(await two.get("/v1/channels"))[1] == 0
            assert_problem(await one.get("/v1/channels"), 429)
            assert_problem(await two.get("/v1/channels"), 429)


async def test_the_quota_refills_one_request_per_interval(settings: Settings) -> None:
    """GCRA: a quota of N a minute is N at once, then one every 60/N seconds."""
    redis = Redis.from_url(settings.require_redis_url())
    limiter = RateLimiter(redis, settings.queue_name)
    key_id = uuid.uuid4()
    try:
        decisions = [await limiter.hit(key_id, 3) for _ in range(4)]
        assert [d.remaining for d in decisions if d] == [2, 1, 0, 0]
        assert [d.allowed for d in decisions if d] == [True, True, True, False]
        refused = decisions[3]
        assert refused is not None
        assert 0 < refused.retry_after_ms <= 20_000
        assert 40_000 < refused.reset_ms <= 60_000
        # Pretend 20 s passed: move the key's stored time back by one interval.
        stored = float(await redis.get(f"{settings.queue_name}:rate-limit:{key_id}") or 0)
        await redis.set(f"{settings.queue_name}:rate-limit:{key_id}", str(stored - 20_000))
        again = await limiter.hit(key_id, 3)
        assert again is not None
        assert (again.allowed, again.remaining) == (True, 0)
    finally:
        await redis.aclose()


async def test_with_redis_down_writes_are_accepted_without_limits(
    app: FastAPI, settings: Settings, engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with another_app(settings, redis_url=DEAD_REDIS) as redisless:
        key = await key_for(redisless, Scope.write, rate_limit_per_minute=1)
        with caplog.at_level(logging.WARNING, logger="services.api.ratelimit"):
            async with client_of(redisless, key) as writer:
                for n in range(3):
                    created = await writer.post("/v1/channels", json={**CHANNEL, "name": f"c{n}"})
                    assert created.status_code == 201, created.text
                    assert not set(RATE_HEADERS) & set(created.headers)
    assert await count_rows(engine, "channels") == 3
    warnings = [r for r in caplog.records if r.name == "services.api.ratelimit"]
    assert warnings, "the skipped limit is logged"
    assert "not enforced" in warnings[0].getMessage()


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A TCP port that accepts connections and never answers, like a hung Redis."""
    with closing(socket.socket()) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


async def test_a_redis_that_never_answers_costs_one_timeout_then_is_skipped(
    silent_redis: str,
) -> None:
    redis = Redis.from_url(silent_redis)
    limiter = RateLimiter(redis, "silent", timeout=0.2, pause=60)
    try:
        assert await limiter.hit(uuid.uuid4(), 5) is None
        # Paused: the next call does not wait for Redis again (it would time out after 0.2 s).
        async with asyncio.timeout(0.1):
            assert await limiter.hit(uuid.uuid4(), 5) is None
    finally:
        await redis.aclose()


# Body size


@pytest.fixture
async def small_app(app: FastAPI, settings: Settings, tmp_path: Path) -> AsyncIterator[FastAPI]:
    """An API process accepting bodies of up to 2 KiB; imports have their own limit."""
    async with another_app(
        settings, max_body_bytes=2048, import_dir=tmp_path / "imports"
    ) as application:
        yield application


async def test_a_json_body_over_the_limit_is_413_and_writes_nothing(
    small_app: FastAPI, engine: Any
) -> None:
    async with client_of(small_app, await key_for(small_app, Scope.write)) as writer:
        big = {**CHANNEL, "attributes": {"note": "长" * 1000}}  # 3000 bytes of UTF-8
        body = assert_problem(await writer.post("/v1/channels", json=big), 413, "body")
        assert body["max_bytes"] == 2048
        assert "RETENTION_MAX_BODY_BYTES" in body["detail"]
        fits = await writer.post("/v1/channels", json={**CHANNEL, "attributes": {"n": "x" * 1500}})
        assert fits.status_code == 201, fits.text
    assert await count_rows(engine, "channels") == 1


async def test_a_chunked_body_without_content_length_is_cut_off_at_the_limit(
    small_app: FastAPI, engine: Any
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"name": "chunked", "type": "agent", "attributes": {"pad": "'
        for _ in range(64):
            sent += 1
            yield b"x" * 512
        yield b'"}}'

    async with client_of(small_app, await key_for(small_app, Scope.write)) as writer:
        response = await writer.post(
            "/v1/channels", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_problem(response, 413, "body")
    assert sent < 64, "reading stopped once the limit was passed"
    assert await count_rows(engine, "channels") == 0


async def test_imports_are_not_held_to_the_body_limit(small_app: FastAPI, engine: Any) -> None:
    rows = b"".join(b"n-%d,Name %d,agent\n" % (n, n) for n in range(400))  # well over 2 KiB
    content = b"external_ref,name,type\n" + rows
    assert len(content) > 4 * 2048
    async with client_of(small_app, await key_for(small_app, Scope.write)) as writer:
        accepted = await post_import(writer, "channels", "channels.csv", content)
    assert accepted.status_code == 202, accepted.text
    imports_dir = small_app.state.settings.import_dir
    assert uploaded(imports_dir), "the upload was stored for its job"
    assert await count_rows(engine, "jobs") == 1


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_over_real_http_both_declared_and_chunked_bodies_get_the_413(
    small_app: FastAPI, engine: Any
) -> None:
    """Through uvicorn: the answer arrives whole, even with the body left unread."""
    port = _free_port()
    config = uvicorn.Config(small_app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        key = await key_for(small_app, Scope.write)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        payload = orjson.dumps({**CHANNEL, "attributes": {"pad": "x" * 50_000}})

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(payload), 1000):
                yield payload[start : start + 1000]

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            declared = await http.post("/v1/channels", content=payload, headers=headers)
            chunked = await http.post("/v1/channels", content=chunks(), headers=headers)
            small = await http.post("/v1/channels", json=CHANNEL, headers=headers)
        assert_problem(declared, 413, "body")
        assert_problem(chunked, 413, "body")
        assert small.status_code == 201, small.text
    finally:
        server.should_exit = True
        await serving
    assert await count_rows(engine, "channels") == 1

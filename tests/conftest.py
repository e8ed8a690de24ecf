"""Every test runs against a real PostgreSQL database made for this run by migrating, and a
Redis key space of its own; tables are emptied before each test."""

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.api.app import create_app
from services.core import migrations
from services.core.api_keys import create_api_key
from services.core.config import Settings
from services.core.crypto import SecretBox, new_key
from services.core.db import session_scope
from services.core.models import Base
from services.core.models.enums import Scope
from tests import servers

SECRET_KEY = new_key()
"""The test deployment's key for secrets at rest; BOX encrypts and decrypts with it."""
BOX = SecretBox([SECRET_KEY])


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


@pytest.fixture(scope="session")
def server_urls() -> Iterator[tuple[str, str]]:
    database, redis, stops = servers.resolve()
    yield database, redis
    for stop in stops:
        stop()


@pytest.fixture(scope="session")
async def make_database(
    server_urls: tuple[str, str],
) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Creates empty databases on the test server; drops them all at the end."""
    created: list[str] = []
    admin_url = server_urls[0]

    async def make() -> str:
        name = f"retention_test_{uuid.uuid4().hex[:12]}"
        await _admin(admin_url, f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    yield make
    for name in created:
        await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def settings(
    server_urls: tuple[str, str], make_database: Callable[[], Awaitable[str]]
) -> AsyncIterator[Settings]:
    url = await make_database()
    await asyncio.to_thread(migrations.upgrade, url)
    prefix = f"retention-test-{uuid.uuid4().hex[:8]}"
    yield Settings(
        database_url=url,
        redis_url=server_urls[1],
        queue_name=prefix,
        webhook_allow_private=True,  # the test receiver listens on 127.0.0.1
        secret_key=SecretStr(SECRET_KEY),
    )
    redis = Redis.from_url(server_urls[1])
    keys = [k async for k in redis.scan_iter(f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        async with application.state.engine.connect() as conn:
            query = "SELECT CAST(coalesce(json_agg(t), '[]') AS text) FROM {} t"
            application.state.test_seeds = {
                table: (await conn.execute(text(query.format(table)))).scalar_one()
                for table in SEEDED
            }
        yield application


@pytest.fixture(scope="session")
def engine(app: FastAPI) -> AsyncEngine:
    result: AsyncEngine = app.state.engine
    return result


SEEDED = ("alert_rules", "sla_policies")
"""Tables whose rows the migrations write (default alert rules and SLA policy): every test starts with
them as migrated."""


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> None:
    if "app" not in request.fixturenames:
        return
    engine: AsyncEngine = request.getfixturevalue("engine")
    seeds: dict[str, str] = request.getfixturevalue("app").state.test_seeds
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        for table, rows in seeds.items():
            await conn.execute(
                text(
                    f"INSERT INTO {table} "
                    f"SELECT * FROM json_populate_recordset(NULL::{table}, CAST(:rows AS json))"
                ),
                {"rows": rows},
            )
    request.getfixturevalue("app").state.key_cache.clear()


KeyMaker = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def client_for(app: FastAPI) -> AsyncIterator[KeyMaker]:
    """`await client_for(Scope.read)`: an HTTP client holding a new key with those scopes."""
    clients: list[httpx.AsyncClient] = []

    async def make(*scopes: Scope, name: str = "test") -> httpx.AsyncClient:
        async with session_scope(app.state.sessionmaker) as session:
            new = await create_api_key(session, name, set(scopes))
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            headers={"Authorization": f"Bearer {new.key}"},
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(client_for: KeyMaker) -> httpx.AsyncClient:
    """A client with an admin key: every scope."""
    return await client_for(Scope.admin)


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as anon:
        yield anon


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A directory outside pytest's shared base for embedded servers' data: another pytest run
    on the machine resets that base to mode 0700, locking the embedded PostgreSQL's user out."""
    with tempfile.TemporaryDirectory(prefix="retention-test-") as path:
        yield Path(path)

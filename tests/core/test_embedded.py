from pathlib import Path

import asyncpg
from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.core.embedded import start_postgres, start_redis


async def test_data_survives_restart(private_dir: Path) -> None:
    pg, rd = start_postgres(private_dir), start_redis(private_dir)
    try:
        conn = await asyncpg.connect(pg.url.replace("+asyncpg", ""))
        await conn.execute("CREATE TABLE kept (v text)")
        await conn.execute("INSERT INTO kept VALUES ('pg')")
        await conn.close()
        client = Redis.from_url(rd.url)
        await client.set("kept", "redis")
        await client.aclose()
    finally:
        pg.stop()
        rd.stop()
    pg.stop()
    rd.stop()

    pg, rd = start_postgres(private_dir), start_redis(private_dir)
    try:
        engine = create_async_engine(pg.url)
        async with engine.connect() as sa_conn:
            assert (await sa_conn.execute(text("SELECT v FROM kept"))).scalar_one() == "pg"
        await engine.dispose()
        pool = await create_pool(RedisSettings.from_dsn(rd.url))
        assert await pool.get("kept") == b"redis"
        await pool.aclose()
    finally:
        pg.stop()
        rd.stop()


async def test_start_reuses_servers_left_running(private_dir: Path) -> None:
    first_pg, first_rd = start_postgres(private_dir, "other"), start_redis(private_dir)
    try:
        pg, rd = start_postgres(private_dir, "other"), start_redis(private_dir)
        assert (pg.url, rd.url) == (first_pg.url, first_rd.url)
        conn = await asyncpg.connect(pg.url.replace("+asyncpg", ""))
        assert await conn.fetchval("SELECT current_database()") == "other"
        await conn.close()
        pg.stop()
        rd.stop()
    finally:
        first_pg.stop()
        first_rd.stop()
    assert not (private_dir / "postgres" / "postmaster.pid").exists()
    assert not (private_dir / "redis" / "valkey.pid").exists()

"""The schema comes only from migrations: they build it from empty, match the models, and undo."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from services.core import migrations
from services.core.models import Base


async def _diff_and_tables(url: str) -> tuple[list[Any], set[str]]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:

        def inspect_sync(sync_conn: Any) -> tuple[list[Any], set[str]]:
            context = MigrationContext.configure(
                sync_conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_name": migrations.include_name,
                },
            )
            return compare_metadata(context, Base.metadata), set(
                inspect(sync_conn).get_table_names()
            )

        result = await conn.run_sync(inspect_sync)
        extensions = (await conn.execute(text("SELECT extname FROM pg_extension"))).scalars().all()
    await engine.dispose()
    return result[0], result[1] | {f"extension:{e}" for e in extensions}


async def test_migrations_match_models_and_downgrade(
    make_database: Callable[[], Awaitable[str]],
) -> None:
    url = await make_database()
    await asyncio.to_thread(migrations.upgrade, url)
    diff, tables = await _diff_and_tables(url)
    assert diff == []
    assert set(Base.metadata.tables) <= tables

    await asyncio.to_thread(migrations.downgrade, url, "base")
    _, tables = await _diff_and_tables(url)
    assert tables - {"alembic_version", "extension:plpgsql"} == set()

    await asyncio.to_thread(migrations.upgrade, url)
    diff, _ = await _diff_and_tables(url)
    assert diff == []


async def test_partitioning_interactions_keeps_every_row_and_external_id(
    make_database: Callable[[], Awaitable[str]],
) -> None:
    url = await make_database()
    await asyncio.to_thread(migrations.upgrade, url, "8c201d37a52f")
    engine = create_async_engine(url)
    rows = [
        (datetime(2019, 3, 5, tzinfo=UTC), "ext-1"),
        (datetime(2019, 3, 6, tzinfo=UTC), None),
        (datetime(2024, 11, 30, 23, tzinfo=UTC), "ext-2"),
    ]
    async with engine.begin() as conn:
        customer = await conn.scalar(
            text(
                "INSERT INTO customers (id, external_ref, name) VALUES (gen_random_uuid(), 'C', 'C') RETURNING id"
            )
        )
        for day, external_id in rows:
            await conn.execute(
                text(
                    "INSERT INTO interactions (id, customer_id, kind, occurred_at, external_id)"
                    " VALUES (gen_random_uuid(), :customer, 'order', :day, :ext)"
                ),
                {"customer": customer, "day": day, "ext": external_id},
            )
    before = "SELECT id, occurred_at, external_id FROM interactions ORDER BY occurred_at"
    async with engine.connect() as conn:
        stored = (await conn.execute(text(before))).all()

    await asyncio.to_thread(migrations.upgrade, url)
    async with engine.connect() as conn:
        assert (await conn.execute(text(before))).all() == stored
        placed = await conn.execute(
            text(
                "SELECT tableoid::regclass::text, count(*) FROM interactions GROUP BY 1 ORDER BY 1"
            )
        )
        assert placed.all() == [("interactions_2019_03", 2), ("interactions_2024_11", 1)]
        keys = await conn.execute(
            text(
                "SELECT external_id, interaction_id, occurred_at FROM interaction_external_ids"
                " ORDER BY external_id"
            )
        )
        assert keys.all() == [(s.external_id, s.id, s.occurred_at) for s in stored if s.external_id]

    await asyncio.to_thread(migrations.downgrade, url, "8c201d37a52f")
    async with engine.connect() as conn:
        assert (await conn.execute(text(before))).all() == stored
    await engine.dispose()

"""The schema comes only from migrations: they build it from empty, match the models, and undo."""

import asyncio
from collections.abc import Awaitable, Callable
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
                sync_conn, opts={"compare_type": True, "compare_server_default": True}
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

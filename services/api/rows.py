"""Single-row reads by primary key straight through an asyncpg pool.

The hottest read path (GET by id, and API-key lookups) skips SQLAlchemy's per-statement
overhead, about 1 ms a query on this hardware against 0.15 ms for asyncpg alone, while the SQL
is still generated from the models, so there is one definition of every table."""

import uuid
from collections.abc import Mapping
from typing import Any, cast

import asyncpg
import orjson
from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from services.core.config import Settings
from services.core.db import asyncpg_dsn
from services.core.models import Base

_DIALECT = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]


async def _init(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
    )


async def _no_reset(conn: asyncpg.Connection) -> None:
    """These connections only run single SELECTs and never change session state, so the
    default reset query on release (a round trip per read) has nothing to undo."""


async def create_pool(settings: Settings) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        asyncpg_dsn(settings.require_database_url()),
        min_size=1,
        max_size=settings.db_pool_size,
        init=_init,
        reset=_no_reset,
    )
    return pool


def compile_sql(query: Select[Any] | Any) -> str:
    return str(query.compile(dialect=_DIALECT))


class RowReader:
    """`await rows.by_id(Customer, id)`: the row as a mapping, or None."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._by_id: dict[str, str] = {}

    async def by_id(self, model: type[Base], row_id: uuid.UUID) -> Mapping[str, Any] | None:
        table = cast(Table, model.__table__)
        sql = self._by_id.get(table.name)
        if sql is None:
            sql = compile_sql(select(table).where(table.c.id == bindparam("id")))
            self._by_id[table.name] = sql
        return await self.fetchrow(sql, row_id)

    async def fetchrow(self, sql: str, *args: Any) -> Mapping[str, Any] | None:
        async with self.pool.acquire() as conn:
            row: Mapping[str, Any] | None = await conn.fetchrow(sql, *args)
            return row

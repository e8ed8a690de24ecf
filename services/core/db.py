"""Engine and session factories; `session_scope()` is the one place a job commits."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from services.core.config import Settings
from services.core.errors import NotFound
from services.core.models import Base


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.require_database_url(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        # No pre-ping: it costs a round trip per checkout; a connection broken by a server
        # restart fails one request and the pool is invalidated and refilled.
        pool_recycle=1800,
        # JIT compiling pays off for long analytical queries only; on the scoring queries it
        # cost more (2.5 s a chunk) than running them, and request queries never need it.
        connect_args={"server_settings": {"jit": "off"}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for single-statement reads: autocommit spares the BEGIN and COMMIT round trips."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )


@asynccontextmanager
async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


M = TypeVar("M", bound=Base)


async def load(
    session: AsyncSession, model: type[M], row_id: uuid.UUID, *, for_update: bool = False
) -> M:
    """The row with this id, locked if asked, or NotFound naming the model."""
    query = select(model).where(inspect(model).primary_key[0] == row_id)
    if for_update:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        raise NotFound(f"{model.__name__} {row_id} does not exist.")
    return row


def asyncpg_dsn(url: str) -> str:
    """The plain libpq form of a SQLAlchemy URL, for asyncpg and `psql`."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)

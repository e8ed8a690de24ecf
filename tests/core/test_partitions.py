"""Monthly partitions of interactions: where rows land, how maintenance splits the default
partition, and that time-bounded reads only touch the months they need."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from sqlalchemy import Select, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from services.api.interactions.service import InteractionFilters, filtered
from services.core import migrations, partitions
from services.core.config import Settings
from services.core.db import asyncpg_dsn
from services.core.models import Interaction
from services.scorer.features import _statement as features_statement
from services.scorer.jobs.maintenance import maintain_partitions

PAST = datetime(2019, 3, 15, 12, tzinfo=UTC)


@pytest.fixture
async def url(make_database: Callable[[], Awaitable[str]]) -> str:
    """A database of its own: the partitions a test creates outlive TRUNCATE."""
    url = await make_database()
    await asyncio.to_thread(migrations.upgrade, url)
    return url


@pytest.fixture
async def conn(url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    yield connection
    await connection.close()


async def _customer(conn: asyncpg.Connection) -> uuid.UUID:
    customer_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO customers (id, external_ref, name, created_at) VALUES ($1, $2, 'C', $3)",
        customer_id,
        f"C-{customer_id}",
        datetime(2018, 1, 1, tzinfo=UTC),
    )
    return customer_id


async def _interaction(conn: asyncpg.Connection, customer_id: uuid.UUID, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO interactions (id, customer_id, kind, occurred_at) VALUES ($1, $2, 'order', $3)",
        uuid.uuid4(),
        customer_id,
        at,
    )


async def _placement(conn: asyncpg.Connection) -> list[tuple[str, int]]:
    rows = await conn.fetch(
        "SELECT tableoid::regclass::text AS part, count(*) AS n FROM interactions GROUP BY 1"
        " ORDER BY 1"
    )
    return [(row["part"], row["n"]) for row in rows]


async def _partition_names(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT inhrelid::regclass::text AS name FROM pg_inherits"
        " WHERE inhparent = 'interactions'::regclass"
    )
    return {row["name"] for row in rows}


def _name(moment: datetime) -> str:
    return f"interactions_{moment:%Y_%m}"


async def test_the_migration_makes_this_month_and_the_next_ones(conn: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    months = [partitions.month_of(now + timedelta(days=31 * n)) for n in range(4)]
    names = await _partition_names(conn)
    assert {_name(m) for m in months} | {"interactions_default"} <= names
    assert all(partitions.is_partition(name) for name in names)
    assert not partitions.is_partition("interactions")
    assert not partitions.is_partition("interaction_external_ids")


async def test_a_month_without_partition_lands_in_default_until_maintenance_moves_it(
    conn: asyncpg.Connection, url: str
) -> None:
    customer = await _customer(conn)
    await _interaction(conn, customer, PAST)
    await _interaction(conn, customer, PAST + timedelta(days=40))  # April
    await _interaction(conn, customer, datetime.now(UTC))
    assert ("interactions_default", 2) in await _placement(conn)

    ctx: dict[str, Any] = {"settings": Settings(database_url=url)}
    assert await maintain_partitions(ctx) == 2
    assert await _placement(conn) == [
        ("interactions_2019_03", 1),
        ("interactions_2019_04", 1),
        (_name(datetime.now(UTC)), 1),
    ]
    assert await maintain_partitions(ctx) == 0  # nothing left to do

    # Its customer cannot go away under it: customers are never deleted.
    with pytest.raises(asyncpg.RestrictViolationError):
        await conn.execute("DELETE FROM customers WHERE id = $1", customer)


async def test_maintenance_held_up_by_a_reader_leaves_its_work_to_the_next_run(
    conn: asyncpg.Connection, url: str
) -> None:
    customer = await _customer(conn)
    await _interaction(conn, customer, PAST)
    ctx: dict[str, Any] = {"settings": Settings(database_url=url)}
    reader = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with reader.transaction():
            await reader.fetchval("SELECT count(*) FROM interactions")
            assert await asyncio.wait_for(maintain_partitions(ctx), 20) == 0
    finally:
        await reader.close()
    assert await _placement(conn) == [("interactions_default", 1)]
    assert await maintain_partitions(ctx) == 1
    assert await _placement(conn) == [("interactions_2019_03", 1)]


async def test_a_month_with_no_rows_to_move_is_created_beside_a_writer_of_another(
    conn: asyncpg.Connection, url: str
) -> None:
    """Import batches create their months while the batch before them is still being written:
    only moving rows out of the default partition has to wait for other transactions."""
    customer_id = await _customer(conn)
    assert await partitions.ensure_range(conn, PAST, PAST) == 1
    writer = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with writer.transaction():
            await _interaction(writer, customer_id, PAST)
            await conn.execute("SET lock_timeout = '2s'")
            april = PAST + timedelta(days=31)
            assert await partitions.ensure_range(conn, april, april) == 1
    finally:
        await writer.close()
    assert await _placement(conn) == [("interactions_2019_03", 1)]


async def test_rows_to_move_wait_for_a_call_that_can_lock_readers_out(
    conn: asyncpg.Connection,
) -> None:
    """Holding the default partition, a transaction must not queue for the lock on interactions
    behind a reader that waits for the default partition: it leaves those rows for later."""
    customer_id = await _customer(conn)
    await _interaction(conn, customer_id, PAST)
    may = PAST + timedelta(days=61)
    async with conn.transaction():
        assert await partitions.ensure_range(conn, may, may) == 1  # nothing to move
        assert await partitions.ensure_range(conn, PAST, PAST) == 0
    assert await _placement(conn) == [("interactions_default", 1)]
    assert await partitions.ensure_range(conn, PAST, PAST) == 1
    assert await _placement(conn) == [("interactions_2019_03", 1)]


async def test_a_read_during_a_split_of_the_default_partition_misses_no_row(
    conn: asyncpg.Connection, url: str
) -> None:
    customer_id = await _customer(conn)
    for minute in range(100):
        await _interaction(conn, customer_id, PAST + timedelta(minutes=minute))
    reader = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with conn.transaction():
            assert await partitions.ensure_range(conn, PAST, PAST) == 1
            count = asyncio.create_task(
                reader.fetchval(
                    "SELECT count(*) FROM interactions WHERE customer_id = $1", customer_id
                )
            )
            await asyncio.sleep(0.5)
            assert not count.done()  # waits for the split to commit
        assert await count == 100
    finally:
        await reader.close()


async def test_ensure_months_creates_each_missing_month_once(conn: asyncpg.Connection) -> None:
    moments = [PAST, PAST + timedelta(days=1), PAST + timedelta(days=70)]
    months = {datetime(2019, 3, 1, tzinfo=UTC), datetime(2019, 5, 1, tzinfo=UTC)}
    before = await _partition_names(conn)
    assert await partitions.ensure_months(conn, moments) == months
    assert await _partition_names(conn) - before == {"interactions_2019_03", "interactions_2019_05"}
    assert await partitions.ensure_months(conn, moments) == months
    assert await _partition_names(conn) - before == {"interactions_2019_03", "interactions_2019_05"}
    known = await partitions.months_with_partitions(conn)
    assert months <= known
    assert datetime(2019, 4, 1, tzinfo=UTC) not in known


async def test_a_month_held_up_by_a_reader_is_given_up_within_the_lock_timeout(
    conn: asyncpg.Connection, url: str
) -> None:
    """An import must not queue for the default partition behind a long read (an export), for
    every reader of interactions would queue behind the import meanwhile."""
    reader = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with reader.transaction():
            await reader.fetchval("SELECT count(*) FROM interactions")
            given_up = partitions.ensure_months(conn, [PAST], timedelta(milliseconds=200))
            assert await asyncio.wait_for(given_up, 5) == set()
            assert "interactions_2019_03" not in await _partition_names(conn)
    finally:
        await reader.close()
    month = datetime(2019, 3, 1, tzinfo=UTC)
    assert await partitions.ensure_months(conn, [PAST], timedelta(milliseconds=200)) == {month}
    assert "interactions_2019_03" in await _partition_names(conn)


def test_months_of_gives_the_month_in_utc_whatever_the_zone_of_each_time() -> None:
    march, april = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    in_utc = [
        datetime(2026, 3, 31, 23, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=timezone(timedelta(0))),
    ]
    west = datetime(2026, 3, 31, 23, 30, tzinfo=timezone(timedelta(hours=-2)))  # April in UTC
    east = datetime(2026, 4, 1, 1, tzinfo=timezone(timedelta(hours=8)))  # March in UTC
    named = datetime(2026, 4, 1, 7, tzinfo=ZoneInfo("Asia/Shanghai"))  # March in UTC
    assert partitions.months_of(in_utc) == {march, april}
    assert partitions.months_of([west]) == {april}
    assert partitions.months_of([east]) == {march}
    assert partitions.months_of([named]) == {march}
    assert partitions.months_of([in_utc[0], west]) == {march, april}
    assert partitions.months_of([]) == set()


async def _relations(url: str, statement: str | Select[Any], params: dict[str, Any]) -> set[str]:
    """The tables a statement actually read: EXPLAIN ANALYZE omits partitions pruned at plan
    time and at run time alike."""
    engine = create_async_engine(url)
    if isinstance(statement, Select):
        literal = {"literal_binds": True}
        statement = str(statement.compile(dialect=engine.dialect, compile_kwargs=literal))
    try:
        async with engine.connect() as session:
            plan = await session.scalar(
                text(f"EXPLAIN (ANALYZE, COSTS OFF, FORMAT JSON) {statement}"), params
            )
    finally:
        await engine.dispose()

    def walk(node: dict[str, Any]) -> set[str]:
        found = {node["Relation Name"]} if "Relation Name" in node else set()
        for child in node.get("Plans", []):
            found |= walk(child)
        return found

    return walk(plan[0]["Plan"])


async def test_features_as_of_a_past_time_read_only_the_months_up_to_it(
    conn: asyncpg.Connection, url: str
) -> None:
    customer = await _customer(conn)
    as_of = datetime(2019, 6, 10, tzinfo=UTC)
    for month in range(1, 13):
        await _interaction(conn, customer, datetime(2019, month, 5, tzinfo=UTC))
    await partitions.maintain(conn)

    params: dict[str, Any] = {"as_of": as_of, "ids": [customer]}
    params |= {f"d{days}": as_of - timedelta(days=days) for days in (30, 90, 180, 365, 455)}
    read = await _relations(url, features_statement(False, False).text, params)
    months = {name for name in read if partitions.is_partition(name)}
    # The default partition may hold any month without a partition of its own: always read.
    assert months == {f"interactions_2019_{m:02d}" for m in range(1, 7)} | {"interactions_default"}


async def test_a_time_range_list_reads_only_its_months(conn: asyncpg.Connection, url: str) -> None:
    customer = await _customer(conn)
    for month in range(1, 13):
        await _interaction(conn, customer, datetime(2019, month, 5, tzinfo=UTC))
    await partitions.maintain(conn)

    filters = InteractionFilters(
        customer_id=customer,
        occurred_after=datetime(2019, 3, 1, tzinfo=UTC),
        occurred_before=datetime(2019, 4, 30, tzinfo=UTC),
    )
    query = filtered(select(Interaction.id), filters)
    read = await _relations(url, query, {})
    assert {name for name in read if partitions.is_partition(name)} == {
        "interactions_2019_03",
        "interactions_2019_04",
    }

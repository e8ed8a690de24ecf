"""Reads by id through the asyncpg pool: reads of one table asked for in the same turn of the
event loop share one query, and each caller still gets its own row, or None, or the error."""

import asyncio
import uuid

import asyncpg
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.rows import RowReader, create_pool
from services.core.config import Settings
from services.core.models import Channel, Customer
from tests.api.customer_rows import insert_channel, insert_customer

BATCH = "retention_api_row_read_batch_size"


def batches(table: str) -> tuple[float, float]:
    """(queries, rows asked for) so far for `table`."""
    labels = {"table": table}
    count = REGISTRY.get_sample_value(f"{BATCH}_count", labels) or 0.0
    total = REGISTRY.get_sample_value(f"{BATCH}_sum", labels) or 0.0
    return count, total


@pytest.fixture
def rows(app: FastAPI) -> RowReader:
    reader: RowReader = app.state.rows
    return reader


async def test_concurrent_reads_share_one_query_and_each_gets_its_own_row(
    rows: RowReader, engine: AsyncEngine
) -> None:
    channel = await insert_channel(engine)
    customers = [await insert_customer(engine, name=f"c{n}") for n in range(20)]
    missing = [uuid.uuid4() for _ in range(5)]
    asked = [*customers, *missing, *customers[:5]]  # five of them twice
    before = batches("customers")

    found = await asyncio.gather(*(rows.by_id(Customer, row_id) for row_id in asked))

    for row_id, row in zip(asked, found, strict=True):
        if row_id in missing:
            assert row is None
        else:
            assert row is not None
            assert row["id"] == row_id
    assert {row["name"] for row in found[:20] if row} == {f"c{n}" for n in range(20)}
    after = batches("customers")
    assert after == (before[0] + 1, before[1] + 25), "one query for 25 distinct ids"
    # Another table's reads in the same turn get their own query.
    customer, other = await asyncio.gather(
        rows.by_id(Customer, customers[0]), rows.by_id(Channel, channel)
    )
    assert customer is not None
    assert other is not None
    assert other["id"] == channel


async def test_reads_in_separate_turns_are_separate_queries(
    rows: RowReader, engine: AsyncEngine
) -> None:
    customer = await insert_customer(engine)
    before = batches("customers")
    for _ in range(3):
        row = await rows.by_id(Customer, customer)
        assert row is not None
        assert row["id"] == customer
    assert batches("customers") == (before[0] + 3, before[1] + 3)


async def test_a_cancelled_reader_leaves_the_others_of_its_batch_their_row(
    rows: RowReader, engine: AsyncEngine
) -> None:
    customer = await insert_customer(engine)
    readers = [asyncio.create_task(rows.by_id(Customer, customer)) for _ in range(3)]
    await asyncio.sleep(0)  # every reader has joined the batch
    readers[1].cancel()
    first, cancelled, last = await asyncio.gather(*readers, return_exceptions=True)
    assert isinstance(cancelled, asyncio.CancelledError)
    assert not isinstance(first, BaseException)
    assert not isinstance(last, BaseException)
    assert first is not None
    assert last is not None
    assert first["id"] == last["id"] == customer


async def test_a_failed_query_reaches_every_reader_of_its_batch(settings: Settings) -> None:
    pool = await create_pool(settings)
    await pool.close()
    closed = RowReader(pool)
    results = await asyncio.gather(
        *(closed.by_id(Customer, uuid.uuid4()) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, asyncpg.InterfaceError) for result in results), results

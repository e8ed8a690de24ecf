"""Ingest and read throughput, each against a baseline measured in the same run.

1. Interactions/s through `POST /v1/interactions/batch` (1,000 per request, 2 concurrent
   clients) versus raw asyncpg `copy_records_to_table` of the same rows into a scratch table
   without indexes and with the same indexes. Target: the API path at >= 10% of raw COPY (stretch 15%).
2. `GET /v1/customers/{id}` requests/s at 32 connections (wrk) versus a bare FastAPI endpoint
   returning a constant, served the same way. Target: >= 50%.

Usage: python bench/ingest.py [--rows 200000] [--workers 2] [--seconds 10]
"""

import argparse
import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import orjson
from uuid_utils.compat import uuid7

from bench.harness import admin_key, scratch_database, uvicorn, wrk
from services.core.config import Settings
from services.core.db import asyncpg_dsn

BATCH = 1_000
CLIENTS = 2


async def seed_customers(settings: Settings, count: int) -> list[uuid.UUID]:
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    ids = [uuid7() for _ in range(count)]
    await conn.copy_records_to_table(
        "customers",
        records=[(i, f"BENCH-{n}", f"Customer {n} 客户") for n, i in enumerate(ids)],
        columns=["id", "external_ref", "name"],
    )
    await conn.close()
    return ids


def make_rows(customers: list[uuid.UUID], count: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for n in range(count):
        is_order = n % 3 == 0
        rows.append(
            {
                "customer_id": rng.choice(customers),
                "kind": "order" if is_order else "visit",
                "occurred_at": start + timedelta(minutes=n),
                "amount": Decimal(rng.randint(100, 99_999)) / 100 if is_order else None,
                "external_id": f"bench-{n}",
            }
        )
    return rows


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    item = {
        "customer_id": str(row["customer_id"]),
        "kind": row["kind"],
        "occurred_at": row["occurred_at"].isoformat(),
        "external_id": row["external_id"],
    }
    if row["amount"] is not None:
        item["amount"] = str(row["amount"])
    return item


async def post_batches(base: str, key: str, bodies: list[bytes]) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:
            while not queue.empty():
                body = queue.get_nowait()
                response = await http.post("/v1/interactions/batch", content=body)
                response.raise_for_status()
                result = response.json()
                if result["created"] != BATCH:
                    raise RuntimeError(f"batch not fully created: {result['errors']} errors")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return time.perf_counter() - started


async def raw_copy(settings: Settings, rows: list[dict[str, Any]], indexes: bool) -> float:
    """COPY into a scratch table shaped like `interactions`, with or without its indexes."""
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    like = "INCLUDING ALL" if indexes else "INCLUDING DEFAULTS"
    await conn.execute("DROP TABLE IF EXISTS copy_baseline")
    await conn.execute(f"CREATE TABLE copy_baseline (LIKE interactions {like})")
    columns = ["id", "customer_id", "kind", "occurred_at", "amount", "currency", "external_id"]
    records = [
        (
            uuid7(),
            r["customer_id"],
            r["kind"],
            r["occurred_at"],
            r["amount"],
            "CNY" if r["amount"] is not None else None,
            r["external_id"],
        )
        for r in rows
    ]
    started = time.perf_counter()
    for offset in range(0, len(records), BATCH):
        await conn.copy_records_to_table(
            "copy_baseline", records=records[offset : offset + BATCH], columns=columns
        )
    elapsed = time.perf_counter() - started
    await conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per endpoint")
    args = parser.parse_args()

    with scratch_database() as settings:
        key = asyncio.run(admin_key(settings))
        customers = asyncio.run(seed_customers(settings, 1_000))
        rows = make_rows(customers, args.rows)
        bodies = [
            orjson.dumps({"items": [as_json(r) for r in rows[o : o + BATCH]]})
            for o in range(0, len(rows), BATCH)
        ]

        bare_copy_seconds = asyncio.run(raw_copy(settings, rows, indexes=False))
        copy_seconds = asyncio.run(raw_copy(settings, rows, indexes=True))
        with uvicorn("services.api.app:create_app", settings, args.workers) as base:
            api_seconds = asyncio.run(post_batches(base, key, bodies))
            customer_url = f"{base}/v1/customers/{customers[0]}"
            api_rps = wrk(customer_url, 32, args.seconds, {"Authorization": f"Bearer {key}"})
        with uvicorn("bench.bare_app:create_app", settings, args.workers) as base:
            bare_rps = wrk(f"{base}/const", 32, args.seconds, {})

    bare_copy_rate = args.rows / bare_copy_seconds
    copy_rate = args.rows / copy_seconds
    api_rate = args.rows / api_seconds
    print(f"rows: {args.rows:,}  batch: {BATCH}  clients: {CLIENTS}  workers: {args.workers}")
    print(f"raw COPY, no indexes     {bare_copy_rate:>10,.0f} rows/s")
    print(f"raw COPY, same indexes   {copy_rate:>10,.0f} rows/s")
    print(
        f"POST batch (API)         {api_rate:>10,.0f} rows/s   "
        f"{api_rate / bare_copy_rate:.1%} of COPY without indexes, "
        f"{api_rate / copy_rate:.1%} with them  (target >= 10%)"
    )
    print(f"bare FastAPI GET         {bare_rps:>10,.0f} req/s")
    print(
        f"GET /v1/customers/{{id}}   {api_rps:>10,.0f} req/s   "
        f"{api_rps / bare_rps:.1%} of bare  (target >= 50%)"
    )


if __name__ == "__main__":
    main()

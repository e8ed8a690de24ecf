"""Ingest and read throughput, each against a baseline measured in the same run.

1. Interactions/s through `POST /v1/interactions/batch` (1,000 per request, 2 concurrent
   clients) versus raw asyncpg `copy_records_to_table` of the same rows into a scratch table
   without indexes and with the same indexes. Target: the API path at >= 10% of raw COPY (stretch 15%).
2. `GET /v1/customers/{id}` requests/s at 32 connections (wrk) versus a bare FastAPI endpoint
   returning a constant, served the same way. Target: >= 50%. Each request names one of the
   1,000 seeded customers at random, so reads that arrive together ask for different rows.
3. The same POST path for 60,000 rows (`--beside-rows`) into a fresh database with a
   `retention worker` rescoring as the events arrive, against the same rows into another fresh
   database without one; and how long after the last batch the worker has scored them all
   (outbox relayed, no query running). Skipped with `--skip-worker`.

Each comparison runs in rounds that alternate the baseline and the API (a slice of the rows, or
a few seconds of wrk, each), so that a machine that slows down or speeds up during the run
weighs on both sides alike; the figures are totals over the rounds.

Usage: python bench/ingest.py [--rows 200000] [--workers 2] [--seconds 10] [--rounds 4]
                              [--beside-rows 60000] [--skip-worker]
"""

import argparse
import asyncio
import random
import tempfile
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
from bench.latency import scorer
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


def batch_bodies(rows: list[dict[str, Any]], size: int = BATCH) -> list[bytes]:
    """The rows as `POST /v1/interactions/batch` bodies of `size` items each."""
    return [
        orjson.dumps({"items": [as_json(r) for r in rows[o : o + size]]})
        for o in range(0, len(rows), size)
    ]


async def post_batches(base: str, key: str, bodies: list[bytes]) -> float:
    """Seconds to post these bodies from CLIENTS clients at once."""
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


async def create_copy_tables(settings: Settings) -> None:
    """Scratch tables shaped like `interactions`: without its indexes, and with them."""
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    await conn.execute("CREATE TABLE copy_bare (LIKE interactions INCLUDING DEFAULTS)")
    await conn.execute("CREATE TABLE copy_indexed (LIKE interactions INCLUDING ALL)")
    await conn.close()


async def raw_copy(settings: Settings, rows: list[dict[str, Any]], table: str) -> float:
    """Seconds to COPY the rows into a scratch table, 1,000 a statement."""
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
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
            table, records=records[offset : offset + BATCH], columns=columns
        )
    elapsed = time.perf_counter() - started
    await conn.close()
    return elapsed


async def settled(settings: Settings, deadline: float = 600) -> float:
    """Seconds until every outbox event is relayed and no query of the worker runs."""
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    started = time.perf_counter()
    while time.perf_counter() - started < deadline:
        pending = await conn.fetchval("SELECT count(*) FROM outbox_events WHERE relayed_at IS NULL")
        running = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'active' AND pid <> pg_backend_pid()"
        )
        if pending == 0 and running == 0:
            break
        await asyncio.sleep(0.1)
    await conn.close()
    return time.perf_counter() - started


def ingest_beside_worker(rows: int, workers: int, worker: bool) -> tuple[float, float | None]:
    """(rows/s through the POST path into a fresh database, seconds until scored after the
    last batch); with `worker`, a `retention worker` runs meanwhile."""
    with scratch_database() as settings:
        key = asyncio.run(admin_key(settings))
        bodies = batch_bodies(make_rows(asyncio.run(seed_customers(settings, 1_000)), rows))
        with uvicorn("services.api.app:create_app", settings, workers) as api:
            if not worker:
                return rows / asyncio.run(post_batches(api, key, bodies)), None
            with tempfile.NamedTemporaryFile(prefix="ingest-worker-", suffix=".log") as log:
                with scorer(settings, log):
                    seconds = asyncio.run(post_batches(api, key, bodies))
                    return rows / seconds, asyncio.run(settled(settings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per endpoint")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of baseline and API")
    parser.add_argument("--beside-rows", type=int, default=60_000)
    parser.add_argument("--skip-worker", action="store_true", help="no ingest beside a worker")
    args = parser.parse_args()

    with scratch_database() as settings:
        key = asyncio.run(admin_key(settings))
        customers = asyncio.run(seed_customers(settings, 1_000))
        rows = make_rows(customers, args.rows)
        bodies = batch_bodies(rows)
        asyncio.run(create_copy_tables(settings))
        per_round = -(-len(bodies) // args.rounds)
        seconds = {"bare": 0.0, "indexed": 0.0, "api": 0.0}
        rps: dict[str, list[float]] = {"bare": [], "api": []}
        with (
            uvicorn("services.api.app:create_app", settings, args.workers) as api,
            uvicorn("bench.bare_app:create_app", settings, args.workers) as bare,
        ):
            for start in range(0, len(bodies), per_round):
                part = rows[start * BATCH : (start + per_round) * BATCH]
                seconds["bare"] += asyncio.run(raw_copy(settings, part, "copy_bare"))
                seconds["indexed"] += asyncio.run(raw_copy(settings, part, "copy_indexed"))
                round_bodies = bodies[start : start + per_round]
                seconds["api"] += asyncio.run(post_batches(api, key, round_bodies))
            paths = [f"/v1/customers/{customer}" for customer in customers]
            auth = {"Authorization": f"Bearer {key}"}
            each = max(1, args.seconds // args.rounds)
            for _ in range(args.rounds):
                rps["bare"].append(wrk(f"{bare}/const", 32, each, {}))
                rps["api"].append(wrk(api + paths[0], 32, each, auth, paths))

    bare_copy_rate = args.rows / seconds["bare"]
    copy_rate = args.rows / seconds["indexed"]
    api_rate = args.rows / seconds["api"]
    bare_rps = sum(rps["bare"]) / len(rps["bare"])
    api_rps = sum(rps["api"]) / len(rps["api"])
    per_round_ratio = [a / b for a, b in zip(rps["api"], rps["bare"], strict=True)]
    print(
        f"rows: {args.rows:,}  batch: {BATCH}  clients: {CLIENTS}  workers: {args.workers}  "
        f"rounds: {args.rounds}"
    )
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
        f"{api_rps / bare_rps:.1%} of bare  (target >= 50%; rounds "
        f"{min(per_round_ratio):.1%} to {max(per_round_ratio):.1%})"
    )
    if args.skip_worker:
        return
    alone, _ = ingest_beside_worker(args.beside_rows, args.workers, worker=False)
    beside, settle = ingest_beside_worker(args.beside_rows, args.workers, worker=True)
    print(f"POST batch, {args.beside_rows:,} rows into a fresh database")
    print(f"  alone                  {alone:>10,.0f} rows/s")
    print(
        f"  beside a worker        {beside:>10,.0f} rows/s   {beside / alone:.0%} of alone; "
        f"all scored {settle:.1f} s after the last batch"
    )


if __name__ == "__main__":
    main()

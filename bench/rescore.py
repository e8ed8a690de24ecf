"""Full recompute at scale: 1,000,000 customers with 20,000,000 interactions.

Loads a synthetic population with COPY (indexes dropped during the load and rebuilt, as a bulk
import would), then times a full recompute through the real job path: a `jobs` row, the
`run_recompute` arq job, run by a `retention worker` subprocess whose peak memory is sampled.
Targets: <= 60 s, worker peak RSS <= 1 GiB. Prints customers/s.

Usage: python -m bench.rescore [--customers 1000000] [--interactions 20000000]
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import psutil
from arq import create_pool
from arq.connections import RedisSettings

from bench.harness import PROCESS_ENV, ROOT, scratch_database
from services.core import partitions
from services.core.config import Settings
from services.core.db import asyncpg_dsn

NOW = datetime(2026, 11, 1, tzinfo=UTC)
KINDS = np.array(["order", "visit", "call", "email", "feedback", "complaint"])
KIND_P = np.array([0.45, 0.25, 0.1, 0.1, 0.07, 0.03])
CHUNK = 1_000_000


def _uuids(n: int, rng: np.random.Generator) -> list[uuid.UUID]:
    raw = rng.bytes(16 * n)
    return [uuid.UUID(bytes=raw[i : i + 16], version=4) for i in range(0, 16 * n, 16)]


async def load(settings: Settings, customers: int, interactions: int) -> list[uuid.UUID]:
    rng = np.random.default_rng(11)
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    ids = sorted(_uuids(customers, rng))
    created = NOW - timedelta(days=1000)
    await conn.copy_records_to_table(
        "customers",
        records=[(i, f"B-{n}", f"Customer {n}", created) for n, i in enumerate(ids)],
        columns=["id", "external_ref", "name", "created_at"],
    )
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'interactions' "
        "AND indexname NOT LIKE 'pk_%' AND indexname NOT LIKE 'uq_%'"
    )
    for index in indexes:
        await conn.execute(f'DROP INDEX "{index["indexname"]}"')

    # Heterogeneous activity: a customer's share of interactions is log-normal, and each one
    # stops (churns) at a random point, so recency spreads over two years.
    weights = rng.lognormal(0.0, 1.0, customers)
    weights /= weights.sum()
    stop_day = rng.uniform(0, 730, customers) * (rng.random(customers) < 0.4)
    for offset in range(0, interactions, CHUNK):
        n = min(CHUNK, interactions - offset)
        who = rng.choice(customers, size=n, p=weights)
        days_ago = stop_day[who] + rng.exponential(120, n)
        kinds = KINDS[rng.choice(len(KINDS), size=n, p=KIND_P)]
        amounts = np.round(rng.lognormal(5, 1, n), 2)
        ratings = rng.integers(1, 6, n)
        occurred = [NOW - timedelta(days=float(d)) for d in days_ago.tolist()]
        await partitions.ensure_range(conn, min(occurred), max(occurred))
        records = [
            (
                u,
                ids[c],
                k,
                t,
                a if k == "order" else None,
                "CNY" if k == "order" else None,
                r if k == "feedback" else None,
            )
            for u, c, k, t, a, r in zip(
                _uuids(n, rng),
                who.tolist(),
                kinds.tolist(),
                occurred,
                amounts.tolist(),
                ratings.tolist(),
                strict=True,
            )
        ]
        await conn.copy_records_to_table(
            "interactions",
            records=records,
            columns=[
                "id",
                "customer_id",
                "kind",
                "occurred_at",
                "amount",
                "currency",
                "satisfaction",
            ],
        )
        print(f"  loaded {offset + n:,} interactions", flush=True)
    # pg_indexes defines a partitioned table's index ON ONLY the parent, which would leave the
    # monthly partitions without it (and the parent's index invalid).
    for index in indexes:
        await conn.execute(index["indexdef"].replace(" ON ONLY ", " ON "))
    # As a bulk import does: sets the visibility map, so scoring reads interactions from the
    # covering index alone, as it does once autovacuum has seen a live table.
    await conn.execute("VACUUM (ANALYZE) interactions, customers")
    await conn.close()
    return ids


async def request_job(settings: Settings) -> uuid.UUID:
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    job_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO jobs (id, kind, params, created_by) VALUES ($1, 'recompute', $2::jsonb, 'bench')",
        job_id,
        f'{{"as_of": "{NOW.isoformat()}", "customer_ids": null}}',
    )
    await conn.close()
    redis = await create_pool(RedisSettings.from_dsn(settings.require_redis_url()))
    await redis.enqueue_job("run_recompute", str(job_id), _queue_name=settings.queue_name)
    await redis.aclose()
    return job_id


async def job_state(
    settings: Settings, job_id: uuid.UUID
) -> tuple[str, float, datetime | None, datetime | None]:
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    row = await conn.fetchrow(
        "SELECT status, progress, started_at, finished_at FROM jobs WHERE id = $1", job_id
    )
    await conn.close()
    assert row is not None
    return row["status"], row["progress"], row["started_at"], row["finished_at"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=20_000_000)
    args = parser.parse_args()

    with scratch_database() as settings:
        started = time.perf_counter()
        asyncio.run(load(settings, args.customers, args.interactions))
        print(f"load: {time.perf_counter() - started:.0f} s")
        env = {
            **os.environ,
            "DATABASE_URL": settings.require_database_url(),
            "REDIS_URL": settings.require_redis_url(),
            "RETENTION_QUEUE_NAME": settings.queue_name,
            **PROCESS_ENV,
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "worker"], env=env, cwd=ROOT
        )
        try:
            process = psutil.Process(worker.pid)
            job_id = asyncio.run(request_job(settings))
            peak = 0
            while True:
                peak = max(peak, process.memory_info().rss)
                status, progress, started_at, finished_at = asyncio.run(job_state(settings, job_id))
                if status in ("succeeded", "failed"):
                    break
                time.sleep(0.5)
        finally:
            worker.terminate()
            worker.wait(timeout=60)

    assert started_at is not None
    assert finished_at is not None
    seconds = (finished_at - started_at).total_seconds()
    print(f"customers: {args.customers:,}  interactions: {args.interactions:,}")
    print(
        f"recompute job: {status} in {seconds:.1f} s  ({args.customers / seconds:,.0f} customers/s; target <= 60 s)"
    )
    print(f"worker peak RSS: {peak / 2**20:,.0f} MiB  (target <= 1024 MiB)")


if __name__ == "__main__":
    main()

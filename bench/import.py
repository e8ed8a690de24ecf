"""Bulk import of interactions from CSV, end to end, against raw COPY in the same run.

Creates channels and customers by COPY, streams a CSV of interactions to a temporary file,
then times `retention import interactions FILE` as a subprocess (reading, checking, staging,
resolving customers, dedup, outbox, checkpoints, the recompute request) while sampling its peak
memory. Baseline, in the same run: asyncpg `copy_records_to_table` of the same rows, already
resolved and typed, into a scratch table with the same indexes (`LIKE interactions INCLUDING
ALL`), batch by batch. Target: >= 100,000 interactions/s, memory flat in file size.

Then the same import again into a fresh database of its own, with a `retention worker` running
against it, as in production: the import must not slow down because a worker is there.

Last, PostgreSQL's own ceiling on this machine: two sessions at once insert the same number of
rows, generated inside PostgreSQL (no client, no parsing, no customer resolution), into tables
shaped like `interactions` and `interaction_external_ids` with the same indexes, each row with
its external-id claim, 50,000 rows a statement. No import that stores and deduplicates rows can
beat it here.

Usage: python -m bench.import [--rows 5000000] [--customers 250000] [--batch-size 50000]
                              [--skip-worker]
"""

import argparse
import asyncio
import csv
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import psutil
import uuid_utils

from bench.harness import ROOT, scratch_database
from bench.latency import scorer
from services.core.config import Settings
from services.core.db import asyncpg_dsn

CHANNELS = 500
CHUNK = 100_000
START = datetime(2021, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 5 * 365 * 86_400
KINDS = np.array(["order", "visit", "call", "email", "feedback", "complaint", "payment"])
KIND_P = np.array([0.42, 0.25, 0.1, 0.1, 0.07, 0.03, 0.03])
SUMMARIES = np.array(
    ["", "", "", "", "", "", "春季补货 spring restock", "回访 follow-up", "投诉 delay"]
)
HEADER = ["external_id", "customer_external_ref", "kind", "occurred_at", "amount", "currency"]
HEADER += ["satisfaction", "summary"]

Row = tuple[str, int, str, datetime, str, str, str]
"""external_id, customer number, kind, occurred_at, amount, satisfaction, summary."""


def rows(count: int, customers: int) -> Iterator[Row]:
    """The same rows for the file and for the baseline: in time order, as exports are."""
    rng = np.random.default_rng(17)
    step = SPAN_SECONDS / count
    for offset in range(0, count, CHUNK):
        n = min(CHUNK, count - offset)
        who = rng.integers(0, customers, n).tolist()
        kinds = KINDS[rng.choice(len(KINDS), size=n, p=KIND_P)].tolist()
        cents = rng.integers(100, 2_000_000, n).tolist()
        ratings = rng.integers(1, 6, n).tolist()
        summaries = SUMMARIES[rng.integers(0, len(SUMMARIES), n)].tolist()
        for i in range(n):
            number = offset + i
            kind = kinds[i]
            amount = (
                f"{cents[i] // 100}.{cents[i] % 100:02d}" if kind in ("order", "payment") else ""
            )
            yield (
                f"bench-{number}",
                who[i],
                kind,
                START + timedelta(seconds=number * step),
                amount,
                str(ratings[i]) if kind == "feedback" else "",
                summaries[i],
            )


def write_csv(path: Path, count: int, customers: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as stream:
        out = csv.writer(stream, lineterminator="\n")
        out.writerow(HEADER)
        for external_id, who, kind, at, amount, rating, summary in rows(count, customers):
            currency = "CNY" if amount else ""
            out.writerow(
                [external_id, f"C-{who}", kind, at.isoformat(), amount, currency, rating, summary]
            )


async def seed(settings: Settings, customers: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Channels and customers by COPY; each customer's (id, channel id) by number."""
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    channels = [uuid.UUID(bytes=uuid_utils.uuid7().bytes) for _ in range(CHANNELS)]
    await conn.copy_records_to_table(
        "channels",
        records=[(c, f"CH-{n}", f"渠道 {n}", "agent") for n, c in enumerate(channels)],
        columns=["id", "external_ref", "name", "type"],
    )
    people = [
        (uuid.UUID(bytes=uuid_utils.uuid7().bytes), channels[n % CHANNELS])
        for n in range(customers)
    ]
    await conn.copy_records_to_table(
        "customers",
        records=[(i, f"C-{n}", f"客户 {n}", c) for n, (i, c) in enumerate(people)],
        columns=["id", "external_ref", "name", "channel_id"],
    )
    await conn.execute("VACUUM ANALYZE channels, customers")
    await conn.close()
    return people


def run_import(settings: Settings, path: Path, batch_size: int) -> tuple[float, int, str]:
    """Seconds, peak RSS and output of `retention import interactions` on the file."""
    env = {**os.environ, "DATABASE_URL": settings.require_database_url()}
    command = [sys.executable, "-m", "services.cli", "import", "interactions", str(path)]
    command += ["--batch-size", str(batch_size)]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    watched = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    output = process.stdout.read() if process.stdout else ""
    if process.returncode != 0:
        raise RuntimeError(f"retention import exited {process.returncode}:\n{output}")
    return seconds, peak, output


async def baseline(
    settings: Settings, count: int, people: list[tuple[uuid.UUID, uuid.UUID]], batch_size: int
) -> float:
    """Seconds spent in COPY alone for the same rows, typed and resolved beforehand, into a
    table with the same indexes."""
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    await conn.execute("CREATE TABLE import_baseline (LIKE interactions INCLUDING ALL)")
    columns = ["id", "customer_id", "channel_id", "kind", "occurred_at", "amount", "currency"]
    columns += ["satisfaction", "external_id", "summary"]
    seconds = 0.0
    batch: list[tuple[Any, ...]] = []

    async def flush() -> None:
        nonlocal seconds
        started = time.perf_counter()
        await conn.copy_records_to_table("import_baseline", records=batch, columns=columns)
        seconds += time.perf_counter() - started

    for external_id, who, kind, at, amount, rating, summary in rows(count, customers=len(people)):
        customer, channel = people[who]
        batch.append(
            (
                uuid_utils.uuid7(),
                customer,
                channel,
                kind,
                at,
                Decimal(amount) if amount else None,
                "CNY" if amount else None,
                int(rating) if rating else None,
                external_id,
                summary or None,
            )
        )
        if len(batch) >= batch_size:
            await flush()
            batch = []
    if batch:
        await flush()
    await conn.close()
    return seconds


# Time-ordered ids like the importer's uuid7, customers spread as in the CSV.
_GENERATED = """
WITH stored AS (
  INSERT INTO ceiling_interactions
    (id, customer_id, kind, occurred_at, amount, currency, external_id)
  SELECT ('01900000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
    ('00000000-0000-4000-8000-' || lpad(to_hex(g % $3), 12, '0'))::uuid,
    CASE WHEN g % 3 = 0 THEN 'order' ELSE 'visit' END,
    timestamptz '2021-01-01' + (g * 31) % 157680000 * interval '1 second',
    CASE WHEN g % 3 = 0 THEN 12.5 END, CASE WHEN g % 3 = 0 THEN 'CNY' END, 'ceiling-' || g
  FROM generate_series($1::bigint, $2::bigint) AS g
  RETURNING id, occurred_at, external_id
)
INSERT INTO ceiling_external_ids (interaction_id, occurred_at, external_id)
SELECT id, occurred_at, external_id FROM stored
"""


async def ceiling(settings: Settings, count: int, customers: int, batch_size: int) -> float:
    """Rows/s of PostgreSQL alone storing generated rows and their claims from two sessions."""
    dsn = asyncpg_dsn(settings.require_database_url())
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE ceiling_interactions (LIKE interactions INCLUDING ALL)")
    await conn.execute(
        "CREATE TABLE ceiling_external_ids (LIKE interaction_external_ids INCLUDING ALL)"
    )
    await conn.close()
    sessions = 2

    async def session(first: int) -> None:
        own = await asyncpg.connect(dsn)
        for start in range(first, count, batch_size * sessions):
            await own.execute(_GENERATED, start, min(start + batch_size, count) - 1, customers)
        await own.close()

    started = time.perf_counter()
    await asyncio.gather(*(session(n * batch_size) for n in range(sessions)))
    return count / (time.perf_counter() - started)


async def stored(settings: Settings) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    count = int(await conn.fetchval("SELECT count(*) FROM interactions"))
    await conn.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--customers", type=int, default=250_000)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--skip-worker", action="store_true", help="no import beside a worker")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "interactions.csv"
        started = time.perf_counter()
        write_csv(path, args.rows, args.customers)
        size = path.stat().st_size
        print(
            f"generated {args.rows:,} rows ({size / 2**20:,.0f} MiB) in {time.perf_counter() - started:.0f} s"
        )
        with scratch_database() as settings:
            people = asyncio.run(seed(settings, args.customers))
            seconds, peak, output = run_import(settings, path, args.batch_size)
            print(output.rstrip())
            count = asyncio.run(stored(settings))
            assert count == args.rows, f"{count:,} interactions stored of {args.rows:,}"
            copying = asyncio.run(baseline(settings, args.rows, people, args.batch_size))
        with scratch_database() as settings:
            most = asyncio.run(ceiling(settings, args.rows, args.customers, args.batch_size))
        beside = None
        if not args.skip_worker:
            with scratch_database() as settings, (Path(scratch) / "worker.log").open("wb") as log:
                asyncio.run(seed(settings, args.customers))
                with scorer(settings, log):
                    beside, _, _ = run_import(settings, path, args.batch_size)
                count = asyncio.run(stored(settings))
                assert count == args.rows, f"{count:,} interactions stored of {args.rows:,}"

    rate = args.rows / seconds
    raw = args.rows / copying
    print(
        f"customers: {args.customers:,}  interactions: {args.rows:,}  batch size: {args.batch_size:,}"
    )
    print(f"retention import: {seconds:.1f} s, {rate:,.0f} interactions/s (target >= 100,000)")
    print(f"baseline COPY, same indexes: {copying:.1f} s, {raw:,.0f} rows/s")
    print(f"import / baseline: {rate / raw:.1%}")
    print(
        f"PostgreSQL alone, 2 sessions, generated rows with their claims: {most:,.0f} rows/s "
        f"(import at {rate / most:.1%} of it)"
    )
    print(f"import peak RSS: {peak / 2**20:,.0f} MiB for a {size / 2**20:,.0f} MiB file")
    if beside is not None:
        print(
            f"retention import beside a running worker: {beside:.1f} s, "
            f"{args.rows / beside:,.0f} interactions/s ({seconds / beside:.0%} of the rate alone)"
        )


if __name__ == "__main__":
    main()

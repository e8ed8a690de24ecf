"""Reports at scale: 1,000,000 customers with 20,000,000 interactions.

Loads the population of bench/rescore.py, spreads customers over 200 channels (8 regions, 40
owners), value tiers and tags, gives them scores, 100,000 alerts and 200,000 tickets, then:
- times the refresh that rebuilds the report tables (the worker's job after each recompute);
- times every report over HTTP, unfiltered and filtered, three times each (target <= 2 s);
- times, as the baseline, one figure (customers ordering per month, tier A, 12 months)
  computed straight from interactions, the way a report without the tables would.

Usage: python -m bench.reports [--customers 1000000] [--interactions 20000000]
       [--database URL]  (reuse a database loaded by an earlier run: skips the load)
"""

import argparse
import asyncio
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx

from bench.harness import REDIS, admin_key, scratch_database, uvicorn
from bench.rescore import NOW, load
from services.core.config import Settings
from services.core.db import asyncpg_dsn, create_engine, create_sessionmaker, session_scope
from services.core.reports.refresh import refresh_reports

TARGET_SECONDS = 2.0
RUNS = 3

_SHAPE = [
    """
    INSERT INTO channels (id, name, type, region, owner)
    SELECT gen_random_uuid(), 'Channel ' || g, 'distributor', 'Region ' || g % 8,
      'owner-' || g % 40
    FROM generate_series(0, 199) AS g
    """,
    """
    WITH ch AS (SELECT id, owner, row_number() OVER (ORDER BY id) - 1 AS n FROM channels)
    UPDATE customers c SET channel_id = ch.id, owner = ch.owner,
      value_tier = (ARRAY['A', 'B', 'B', 'C', 'C'])[1 + abs(hashtext(c.id::text)) % 5],
      tags = CASE abs(hashtext(c.external_ref)) % 20
        WHEN 0 THEN '{vip}'::text[] WHEN 1 THEN '{vip,wholesale}' WHEN 2 THEN '{wholesale}'
        ELSE '{}' END
    FROM ch WHERE ch.n = abs(hashtext(c.id::text || 'channel')) % 200
    """,
    """
    INSERT INTO customer_health (customer_id, score, band, contributions, features,
      profile_version, as_of, trend)
    SELECT id, s, CASE WHEN s >= 70 THEN 'green' WHEN s >= 40 THEN 'yellow' ELSE 'red' END,
      '{}', '{}', 1, $1, random() * 40 - 25
    FROM (SELECT id, random() * 100 AS s FROM customers) x
    """,
    """
    INSERT INTO channel_health (channel_id, score, band, contributions, features,
      profile_version, as_of, trend)
    SELECT id, 30 + random() * 60, 'yellow', '{}', '{}', 1, $1, random() * 20 - 10
    FROM channels
    """,
    """
    INSERT INTO alerts (id, rule_id, subject, subject_id, channel_id, severity, status, reason,
      owner, due_at, opened_at, closed_at)
    SELECT gen_random_uuid(), r.id, 'customer', c.id, c.channel_id, 'high',
      CASE WHEN x.k < 0.6 THEN 'resolved' WHEN x.k < 0.7 THEN 'dismissed' ELSE 'open' END,
      '{}', c.owner, x.opened + interval '3 days', x.opened,
      CASE WHEN x.k < 0.7 THEN x.opened + x.k * interval '10 days' END
    FROM (
      SELECT id, channel_id, owner, row_number() OVER () AS n
      FROM customers TABLESAMPLE SYSTEM (10) LIMIT 100000
    ) c
    CROSS JOIN LATERAL (
      SELECT random() AS k, CAST($1 AS timestamptz) - random() * interval '365 days' AS opened
      WHERE c.n > 0
    ) x
    CROSS JOIN LATERAL (
      SELECT id FROM alert_rules ORDER BY id OFFSET c.n % 5 LIMIT 1
    ) r
    """,
    """
    INSERT INTO tickets (id, customer_id, channel_id, subject, kind, priority, status,
      created_at, first_response_due_at, resolved_at, first_response_breached,
      resolution_breached)
    SELECT gen_random_uuid(), c.id, c.channel_id, 'Ticket', 'request', 'normal', 'resolved',
      x.created, x.created + interval '8 hours', x.created + interval '1 day',
      random() < 0.1, random() < 0.15
    FROM (
      SELECT id, channel_id, row_number() OVER () AS n
      FROM customers TABLESAMPLE SYSTEM (20) LIMIT 200000
    ) c
    CROSS JOIN LATERAL (SELECT CAST($1 AS timestamptz) - random() * interval '365 days' AS created WHERE c.n > 0) x
    """,
    "VACUUM (ANALYZE) customers, customer_health, alerts, tickets, channels",
]

_BASELINE = """
SELECT date_trunc('month', i.occurred_at) AS month, count(DISTINCT i.customer_id)
FROM interactions i JOIN customers c ON c.id = i.customer_id
WHERE i.kind = 'order' AND c.value_tier = 'A'
  AND i.occurred_at >= CAST($1 AS timestamptz) - interval '12 months' AND i.occurred_at < $1
GROUP BY 1
"""

REPORTS: list[tuple[str, dict[str, Any]]] = [
    ("retention", {}),
    ("retention", {"tier": "A"}),
    ("retention", {"granularity": "week", "since": "2025-11-03"}),
    ("retention", {"granularity": "quarter", "since": "2024-01-01", "region": "Region 3"}),
    ("repurchase", {}),
    ("repurchase", {"tier": "A"}),
    ("repurchase", {"owner": "owner-7", "tag": "vip"}),
    ("cohorts", {"since": "2024-11-01", "months": 24}),
    ("cohorts", {"since": "2024-11-01", "months": 24, "tier": "B"}),
    ("health", {}),
    ("health", {"region": "Region 5"}),
    ("channels", {"sort": "revenue_trend"}),
    ("channels", {"tag": "wholesale"}),
    ("alerts", {"group_by": "rule"}),
    ("alerts", {"group_by": "owner", "tier": "A"}),
]


async def shape(settings: Settings) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    for statement in _SHAPE:
        if "$1" in statement:
            await conn.execute(statement, NOW)
        else:
            await conn.execute(statement)
    await conn.close()


async def refresh(settings: Settings) -> float:
    engine = create_engine(settings)
    started = time.perf_counter()
    async with session_scope(create_sessionmaker(engine)) as session:
        done = await refresh_reports(session, NOW)
    await engine.dispose()
    print(f"  segments: {done.segments:,}")
    return time.perf_counter() - started


async def baseline(settings: Settings) -> float:
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    started = time.perf_counter()
    await conn.fetch(_BASELINE, NOW)
    seconds = time.perf_counter() - started
    await conn.close()
    return seconds


@contextmanager
def database(url: str | None, customers: int, interactions: int) -> Iterator[Settings]:
    if url is not None:
        yield Settings(database_url=url, redis_url=REDIS)
        return
    with scratch_database() as settings:
        started = time.perf_counter()
        asyncio.run(load(settings, customers, interactions))
        asyncio.run(shape(settings))
        print(f"load: {time.perf_counter() - started:.0f} s")
        yield settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=20_000_000)
    parser.add_argument("--database", help="an already loaded database; skips the load")
    parser.add_argument(
        "--no-refresh", action="store_true", help="with --database: keep its report tables"
    )
    args = parser.parse_args()

    with database(args.database, args.customers, args.interactions) as settings:
        if not args.no_refresh:
            refresh_seconds = asyncio.run(refresh(settings))
            print(f"refresh of the report tables: {refresh_seconds:.1f} s")
        key = asyncio.run(admin_key(settings))
        worst = 0.0
        medians: dict[str, float] = {}
        with uvicorn("services.api.app:create_app", settings, workers=1) as base:
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                for name, params in REPORTS:
                    seconds = []
                    for _ in range(RUNS):
                        started = time.perf_counter()
                        response = client.get(f"/v1/reports/{name}", params=params)
                        seconds.append(time.perf_counter() - started)
                        response.raise_for_status()
                    worst = max(worst, *seconds)
                    medians[f"{name} {params}"] = statistics.median(seconds)
                    shown = " ".join(f"{k}={v}" for k, v in params.items()) or "(default)"
                    print(
                        f"  {name:<11} {shown:<52} median {statistics.median(seconds):6.3f} s"
                        f"  max {max(seconds):6.3f} s"
                    )
        direct = asyncio.run(baseline(settings))
    print(f"slowest report: {worst:.3f} s  (target <= {TARGET_SECONDS:.0f} s)")
    same = medians["repurchase {'tier': 'A'}"]
    print(
        f"baseline, customers ordering per month (tier A, 12 months) straight from "
        f"interactions: {direct:.2f} s; the repurchase report with tier=A: {same:.3f} s "
        f"({direct / same:,.0f}x faster)"
    )


if __name__ == "__main__":
    main()

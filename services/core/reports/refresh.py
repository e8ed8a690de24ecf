"""Rebuild the report tables (services/core/models/reports.py) from interactions and scores.

One transaction: readers keep seeing the previous figures until it commits. The work is a few
set-based statements over temporary tables:

1. every customer's segment (channel, tier, owner, tags), adding segments not seen before;
2. every customer's active days (UTC), with the orders and revenue of each;
3. activity spells: a spell starts at a customer's first interaction, or at the first after
   `churn_days` without any, and the customer is churned `churn_days` after its last;
4. per week, month and quarter and segment: spells started (new or won back), churned,
   customers ordering once or more and twice or more, orders, revenue, order intervals;
5. first-order cohorts by month; and today's band counts and score histogram per segment.
"""

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.events import JOBS_REQUESTED, emit
from services.core.models import Job, ReportRefresh
from services.core.profiles import active_profile

JOB_KIND = "report_refresh"
UNITS = ("week", "month", "quarter")
_LOCK = 7_311_017

_STATEMENTS = (
    "SELECT set_config('work_mem', '256MB', true), set_config('timezone', 'UTC', true)",
    """
    INSERT INTO report_segments (key, channel_id, value_tier, owner, tags)
    SELECT DISTINCT ON (key) key, channel_id, value_tier, owner, tags
    FROM (
      SELECT json_build_array(channel_id, value_tier, owner, tags)::text AS key,
        channel_id, value_tier, owner, tags
      FROM customers
    ) c
    ON CONFLICT (key) DO NOTHING
    """,
    """
    CREATE TEMP TABLE rs_customer ON COMMIT DROP AS
    SELECT c.id AS customer_id, s.id AS segment_id
    FROM customers c
    JOIN report_segments s ON s.key = json_build_array(c.channel_id, c.value_tier, c.owner, c.tags)::text
    """,
    """
    CREATE TEMP TABLE rs_day ON COMMIT DROP AS
    SELECT customer_id, (occurred_at AT TIME ZONE 'UTC')::date AS day,
      count(*) FILTER (WHERE kind = 'order') AS orders,
      coalesce(sum(amount) FILTER (WHERE kind = 'order'), 0) AS revenue
    FROM interactions
    WHERE occurred_at < :as_of
    GROUP BY 1, 2
    """,
    """
    CREATE TEMP TABLE rs_spell ON COMMIT DROP AS
    SELECT customer_id, spell_no, min(day) AS started, max(day) + :churn_days AS churns
    FROM (
      SELECT customer_id, day,
        count(*) FILTER (WHERE gap IS NULL OR gap >= :churn_days)
          OVER (PARTITION BY customer_id ORDER BY day) AS spell_no
      FROM (
        SELECT customer_id, day, day - lag(day) OVER (PARTITION BY customer_id ORDER BY day) AS gap
        FROM rs_day
      ) g
    ) s
    GROUP BY customer_id, spell_no
    """,
    """
    CREATE TEMP TABLE rs_customer_period ON COMMIT DROP AS
    SELECT u.unit, o.customer_id, date_trunc(u.unit, o.day::timestamp)::date AS period,
      sum(o.orders) AS orders, sum(o.revenue) AS revenue,
      coalesce(sum(o.gap), 0) AS interval_days, count(o.gap) AS intervals
    FROM (
      SELECT customer_id, day, orders, revenue,
        day - lag(day) OVER (PARTITION BY customer_id ORDER BY day) AS gap
      FROM rs_day WHERE orders > 0
    ) o
    CROSS JOIN unnest(CAST(:units AS text[])) AS u(unit)
    GROUP BY 1, 2, 3
    """,
    "DELETE FROM report_periods",
    """
    INSERT INTO report_periods (unit, period, segment_id, new_customers, won_back, churned,
      churned_from_start, ordering_customers, repeat_customers, orders, revenue, interval_days,
      intervals)
    SELECT f.unit, f.period, c.segment_id, sum(f.new), sum(f.back), sum(f.churned),
      sum(f.churned_from_start), sum(f.ordering), sum(f.repeat), sum(f.orders),
      sum(f.revenue), sum(f.interval_days), sum(f.intervals)
    FROM (
      SELECT u.unit, date_trunc(u.unit, s.started::timestamp)::date AS period, s.customer_id,
        (s.spell_no = 1)::int AS new, (s.spell_no > 1)::int AS back, 0 AS churned,
        0 AS churned_from_start, 0 AS ordering, 0 AS repeat, 0 AS orders, 0 AS revenue,
        0 AS interval_days, 0 AS intervals
      FROM rs_spell s CROSS JOIN unnest(CAST(:units AS text[])) AS u(unit)
      UNION ALL
      SELECT u.unit, date_trunc(u.unit, s.churns::timestamp)::date, s.customer_id, 0, 0, 1,
        (date_trunc(u.unit, s.started::timestamp) < date_trunc(u.unit, s.churns::timestamp))::int,
        0, 0, 0, 0, 0, 0
      FROM rs_spell s CROSS JOIN unnest(CAST(:units AS text[])) AS u(unit)
      WHERE s.churns <= :today
      UNION ALL
      SELECT unit, period, customer_id, 0, 0, 0, 0, 1, (orders >= 2)::int, orders, revenue,
        interval_days, intervals
      FROM rs_customer_period
    ) f
    JOIN rs_customer c USING (customer_id)
    GROUP BY 1, 2, 3
    """,
    "DELETE FROM report_cohorts",
    """
    INSERT INTO report_cohorts (cohort, month_offset, segment_id, customers)
    SELECT f.cohort,
      (12 * (extract(year FROM p.period) - extract(year FROM f.cohort))
        + extract(month FROM p.period) - extract(month FROM f.cohort))::int,
      c.segment_id, count(*)
    FROM rs_customer_period p
    JOIN (
      SELECT customer_id, min(period) AS cohort FROM rs_customer_period
      WHERE unit = 'month' GROUP BY 1
    ) f USING (customer_id)
    JOIN rs_customer c USING (customer_id)
    WHERE p.unit = 'month'
    GROUP BY 1, 2, 3
    """,
    "DELETE FROM report_health_days WHERE day = :today",
    """
    INSERT INTO report_health_days (day, segment_id, green, yellow, red, histogram)
    WITH b AS (
      SELECT c.segment_id, least(100, greatest(0, floor(h.score)))::int AS bucket,
        count(*) AS n,
        count(*) FILTER (WHERE h.band = 'green') AS green,
        count(*) FILTER (WHERE h.band = 'yellow') AS yellow,
        count(*) FILTER (WHERE h.band = 'red') AS red
      FROM customer_health h JOIN rs_customer c USING (customer_id)
      GROUP BY 1, 2
    )
    SELECT CAST(:today AS date), s.segment_id, coalesce(sum(b.green), 0), coalesce(sum(b.yellow), 0),
      coalesce(sum(b.red), 0), array_agg(coalesce(b.n, 0) ORDER BY g.bucket)
    FROM (SELECT DISTINCT segment_id FROM b) s
    CROSS JOIN generate_series(0, 100) AS g(bucket)
    LEFT JOIN b ON b.segment_id = s.segment_id AND b.bucket = g.bucket
    GROUP BY s.segment_id
    """,
)


_ANALYZE = "ANALYZE report_segments, report_periods, report_cohorts, report_health_days"


@dataclass(frozen=True)
class Refreshed:
    as_of: datetime
    churn_days: int
    segments: int
    seconds: float


async def refresh_reports(session: AsyncSession, as_of: datetime | None = None) -> Refreshed:
    """Rebuild every report table as of `as_of` (default now) within the caller's transaction.
    Concurrent refreshes queue on an advisory lock instead of interleaving their deletes."""
    started = time.perf_counter()
    as_of = as_of or datetime.now(UTC)
    await session.execute(select(func.pg_advisory_xact_lock(_LOCK)))
    profile = await active_profile(session)
    churn_days = math.ceil(profile.churn_inactivity_days)
    params: dict[str, object] = {
        "as_of": as_of,
        "today": as_of.astimezone(UTC).date(),
        "churn_days": churn_days,
        "units": list(UNITS),
    }
    for statement in _STATEMENTS:
        await session.execute(text(statement), params)
    # Fresh statistics: a plan made for last night's row counts can be off by orders of
    # magnitude once the tables are rebuilt (a nested loop over every segment, say).
    await session.execute(text(_ANALYZE))
    segments = await session.scalar(text("SELECT count(*) FROM report_segments")) or 0
    seconds = time.perf_counter() - started
    session.add(
        ReportRefresh(
            as_of=as_of,
            churn_days=churn_days,
            segments=segments,
            seconds=seconds,
            finished_at=datetime.now(UTC),
        )
    )
    await session.flush()
    return Refreshed(as_of, churn_days, segments, seconds)


async def last_refresh(session: AsyncSession) -> ReportRefresh | None:
    return await session.scalar(
        select(ReportRefresh).order_by(ReportRefresh.finished_at.desc()).limit(1)
    )


async def request_refresh(session: AsyncSession, created_by: str, reason: str) -> Job:
    """A queued refresh job and the event that starts it, in the caller's transaction."""
    job = Job(kind=JOB_KIND, params={"reason": reason}, created_by=created_by)
    session.add(job)
    await session.flush()
    await emit(session, JOBS_REQUESTED, [job.id], [], kind=JOB_KIND)
    return job

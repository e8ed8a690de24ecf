"""Report figures: sums over the pre-aggregated tables, plus live queries over small tables.

Retention and repurchase read report_periods, cohorts report_cohorts and the health bands
report_health_days; movers, the channel leaderboard's alerts and SLA figures, and the alerts
report read their own tables, which hold thousands of rows where interactions hold millions.
"""

import bisect
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

import numpy as np
from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.reports import filters as report_filters
from services.api.reports.filters import Window
from services.api.reports.schemas import (
    AlertFigures,
    AlertGroup,
    AlertGroupPeriod,
    AlertsReport,
    ChannelFigures,
    ChannelRow,
    ChannelSort,
    ChannelsReport,
    CohortRow,
    CohortsReport,
    Figure,
    HealthFigures,
    HealthPeriod,
    HealthReport,
    Mover,
    ReportFilters,
    RepurchaseFigures,
    RepurchasePeriod,
    RepurchaseReport,
    RetentionFigures,
    RetentionPeriod,
    RetentionReport,
)
from services.core.models import ReportRefresh
from services.core.reports import periods
from services.core.reports.refresh import last_refresh

Values = Mapping[str, float | None]
PERCENTILES = {"p10": 10, "p25": 25, "median": 50, "p75": 75, "p90": 90}


def percent(part: float, whole: float) -> float | None:
    return None if not whole else round(100 * part / whole, 1)


def figures(current: Values, previous: Values) -> dict[str, Figure]:
    out = {}
    for name, value in current.items():
        before = previous.get(name)
        change = None if value is None or before is None else round(value - before, 4)
        out[name] = Figure(value=value, previous=before, change=change)
    return out


def _header(
    window: Window, filters: ReportFilters, refresh: ReportRefresh | None
) -> dict[str, Any]:
    return {
        "granularity": window.unit,
        "since": window.since,
        "until": window.until,
        "filters": filters,
        "data_as_of": refresh.as_of if refresh else None,
    }


def _period(window: Window, start: date, today: date | None) -> dict[str, Any]:
    """`today`: the day the figures describe; a period that has not ended by then is
    incomplete."""
    end = periods.add(window.unit, start, 1)
    return {
        "period_start": start,
        "period_end": end,
        "complete": today is not None and end <= today,
    }


def _day(refresh: ReportRefresh | None) -> date | None:
    return refresh.as_of.astimezone(UTC).date() if refresh else None


_PERIOD_SUMS = """
SELECT period, sum(new_customers) AS new, sum(won_back) AS won_back, sum(churned) AS churned,
  sum(churned_from_start) AS churned_from_start, sum(ordering_customers) AS ordering,
  sum(repeat_customers) AS repeat, sum(orders) AS orders, sum(revenue) AS revenue,
  sum(interval_days) AS interval_days, sum(intervals) AS intervals
FROM report_periods
WHERE unit = :unit AND period < :until AND segment_id IN ({segments})
GROUP BY period ORDER BY period
"""


async def _period_sums(
    session: AsyncSession, window: Window, filters: ReportFilters, since: date | None
) -> list[RowMapping]:
    """Each period's sums, from `since` or from the first period ever (for running totals)."""
    segments, params = report_filters.segments(filters)
    query = _PERIOD_SUMS.format(segments=segments)
    if since is not None:
        query = query.replace("WHERE unit", "WHERE period >= :since AND unit")
        params["since"] = since
    params |= {"unit": window.unit, "until": window.until}
    return list((await session.execute(text(query), params)).mappings().all())


def _retention_values(
    starts: Sequence[date], rows: Sequence[RowMapping]
) -> dict[date, dict[str, float | None]]:
    found = [r["period"] for r in rows]
    running = np.cumsum([0] + [r["new"] + r["won_back"] - r["churned"] for r in rows])
    by_period = dict(zip(found, rows, strict=True))
    values = {}
    for start in starts:
        at_start = int(running[bisect.bisect_left(found, start)])
        row = by_period.get(start)
        new, back, churned, from_start = (
            (row["new"], row["won_back"], row["churned"], row["churned_from_start"])
            if row
            else (0, 0, 0, 0)
        )
        retained = at_start - from_start
        values[start] = {
            "customers_at_start": at_start,
            "retained": retained,
            "churned": churned,
            "new": new,
            "won_back": back,
            "customers_at_end": at_start + new + back - churned,
            "retention_rate": percent(retained, at_start),
            "churn_rate": percent(from_start, at_start),
        }
    return values


async def retention(
    session: AsyncSession, window: Window, filters: ReportFilters
) -> RetentionReport:
    refresh = await last_refresh(session)
    rows = await _period_sums(session, window, filters, since=None)
    starts = [window.before, *window.starts]
    values = _retention_values(starts, rows)
    return RetentionReport(
        **_header(window, filters, refresh),
        churn_days=refresh.churn_days if refresh else None,
        periods=[
            RetentionPeriod(
                **_period(window, start, _day(refresh)),
                figures=RetentionFigures(**figures(values[start], values[before])),
            )
            for before, start in zip(starts, starts[1:], strict=False)
        ],
    )


def _repurchase_values(row: RowMapping | None) -> dict[str, float | None]:
    if row is None:
        return {
            "ordering_customers": 0,
            "repeat_customers": 0,
            "repeat_rate": None,
            "orders": 0,
            "revenue": 0.0,
            "average_order_interval_days": None,
        }
    intervals = row["intervals"]
    return {
        "ordering_customers": row["ordering"],
        "repeat_customers": row["repeat"],
        "repeat_rate": percent(row["repeat"], row["ordering"]),
        "orders": row["orders"],
        "revenue": float(row["revenue"]),
        "average_order_interval_days": (
            round(row["interval_days"] / intervals, 1) if intervals else None
        ),
    }


async def repurchase(
    session: AsyncSession, window: Window, filters: ReportFilters
) -> RepurchaseReport:
    refresh = await last_refresh(session)
    rows = await _period_sums(session, window, filters, since=window.before)
    by_period = {r["period"]: r for r in rows}
    starts = [window.before, *window.starts]
    values = {start: _repurchase_values(by_period.get(start)) for start in starts}
    return RepurchaseReport(
        **_header(window, filters, refresh),
        periods=[
            RepurchasePeriod(
                **_period(window, start, _day(refresh)),
                figures=RepurchaseFigures(**figures(values[start], values[before])),
            )
            for before, start in zip(starts, starts[1:], strict=False)
        ],
    )


_COHORTS = """
SELECT cohort, month_offset, sum(customers) AS customers
FROM report_cohorts
WHERE cohort >= :since AND cohort < :until AND month_offset <= :months
  AND segment_id IN ({segments})
GROUP BY 1, 2
"""


async def cohorts(
    session: AsyncSession, window: Window, filters: ReportFilters, months: int
) -> CohortsReport:
    refresh = await last_refresh(session)
    segments, params = report_filters.segments(filters)
    params |= {"since": window.before, "until": window.until, "months": months}
    rows = (await session.execute(text(_COHORTS.format(segments=segments)), params)).all()
    counts = {(cohort, offset): n for cohort, offset, n in rows}
    last_month = periods.start_of("month", refresh.as_of.date()) if refresh else window.since

    def shares(cohort: date) -> list[float | None]:
        size = counts.get((cohort, 0), 0)
        done = min(months, periods.months_between(cohort, last_month) - 1)
        return [percent(counts.get((cohort, k), 0), size) for k in range(done + 1)]

    out = []
    for start in window.starts:
        current, before = shares(start), shares(periods.add("month", start, -1))
        values = {str(k): v for k, v in enumerate(current)}
        previous = {str(k): v for k, v in enumerate(before)}
        out.append(
            CohortRow(
                cohort=start,
                customers=counts.get((start, 0), 0),
                retention=list(figures(values, previous).values()),
            )
        )
    return CohortsReport(**_header(window, filters, refresh), months=months, cohorts=out)


_HEALTH_DAYS = """
WITH days AS (
  SELECT date_trunc(:unit, day::timestamp)::date AS period, max(day) AS day
  FROM report_health_days WHERE day >= :since AND day < :until GROUP BY 1
)
SELECT d.period, d.day, u.score - 1 AS score, sum(u.n) AS n,
  sum(h.green) FILTER (WHERE u.score = 1) AS green,
  sum(h.yellow) FILTER (WHERE u.score = 1) AS yellow,
  sum(h.red) FILTER (WHERE u.score = 1) AS red
FROM days d
JOIN report_health_days h ON h.day = d.day AND h.segment_id IN ({segments})
CROSS JOIN LATERAL unnest(h.histogram) WITH ORDINALITY AS u(n, score)
GROUP BY 1, 2, 3
"""


def _health_values(histogram: np.ndarray, bands: Sequence[int]) -> dict[str, float | None]:
    scored = int(histogram.sum())
    values: dict[str, float | None] = {
        "scored": scored,
        "green": bands[0],
        "yellow": bands[1],
        "red": bands[2],
        "red_share": percent(bands[2], scored),
    }
    cumulative = np.cumsum(histogram)
    for name, q in PERCENTILES.items():
        values[name] = float(np.searchsorted(cumulative, q / 100 * scored)) if scored else None
    return values


_MOVERS = """
SELECT h.customer_id, c.name, c.external_ref, h.score, h.band, h.trend AS change
FROM customer_health h JOIN customers c ON c.id = h.customer_id
WHERE h.trend < 0 AND c.archived_at IS NULL{conditions}
ORDER BY h.trend, h.customer_id
LIMIT :limit
"""


async def health(
    session: AsyncSession, window: Window, filters: ReportFilters, movers: int
) -> HealthReport:
    refresh = await last_refresh(session)
    segments, params = report_filters.segments(filters)
    params |= {"unit": window.unit, "since": window.before, "until": window.until}
    rows = (await session.execute(text(_HEALTH_DAYS.format(segments=segments)), params)).all()
    histograms: dict[date, np.ndarray] = {}
    bands: dict[date, list[int]] = {}
    days: dict[date, date] = {}
    for period, day, score, n, green, yellow, red in rows:
        histograms.setdefault(period, np.zeros(101, dtype=np.int64))[score] = n
        days[period] = day
        if green is not None:
            bands[period] = [int(green), int(yellow), int(red)]
    starts = [window.before, *window.starts]
    empty = dict.fromkeys(["scored", "green", "yellow", "red", "red_share", *PERCENTILES])
    values = {
        start: _health_values(histograms[start], bands[start]) if start in days else empty
        for start in starts
    }
    found, live = report_filters.conditions(filters, "c")
    where = "".join(f" AND {c}" for c in found)
    mover_rows = await session.execute(
        text(_MOVERS.format(conditions=where)), live | {"limit": movers}
    )
    return HealthReport(
        **_header(window, filters, refresh),
        periods=[
            HealthPeriod(
                **_period(window, start, _day(refresh)),
                snapshot_day=days.get(start),
                figures=HealthFigures(**figures(values[start], values[before])),
            )
            for before, start in zip(starts, starts[1:], strict=False)
        ],
        movers=[Mover.model_validate(dict(r)) for r in mover_rows.mappings()],
    )


_CHANNELS = """
WITH figures AS (
  SELECT s.channel_id,
    sum(p.revenue) FILTER (WHERE p.period = :period) AS revenue,
    sum(p.revenue) FILTER (WHERE p.period = :previous) AS revenue_previous,
    sum(p.churned) FILTER (WHERE p.period = :period) AS churned,
    sum(p.churned) FILTER (WHERE p.period = :previous) AS churned_previous
  FROM report_periods p JOIN report_segments s ON s.id = p.segment_id
  WHERE p.unit = :unit AND p.period IN (:period, :previous) AND p.segment_id IN ({segments})
  GROUP BY 1
),
open_alerts AS (
  SELECT channel_id, count(*) AS n FROM alerts
  WHERE status IN ('open', 'acknowledged') AND channel_id IS NOT NULL GROUP BY 1
),
sla AS (
  SELECT channel_id,
    count(*) FILTER (WHERE created_at >= :period_at AND decided AND NOT breached) AS met,
    count(*) FILTER (WHERE created_at >= :period_at AND decided) AS decided,
    count(*) FILTER (WHERE created_at < :period_at AND decided AND NOT breached) AS met_previous,
    count(*) FILTER (WHERE created_at < :period_at AND decided) AS decided_previous
  FROM (
    SELECT channel_id, created_at,
      first_response_breached OR resolution_breached AS breached,
      first_response_breached OR resolution_breached OR resolved_at IS NOT NULL AS decided
    FROM tickets
    WHERE created_at >= :previous_at AND created_at < :end_at
      AND first_response_due_at IS NOT NULL AND channel_id IS NOT NULL
  ) t
  GROUP BY 1
)
SELECT ch.id AS channel_id, ch.name, ch.region, h.band, h.score, h.trend,
  coalesce(f.revenue, 0) AS revenue, coalesce(f.revenue_previous, 0) AS revenue_previous,
  coalesce(f.churned, 0) AS churned, coalesce(f.churned_previous, 0) AS churned_previous,
  coalesce(a.n, 0) AS open_alerts, coalesce(sla.met, 0) AS met,
  coalesce(sla.decided, 0) AS decided, coalesce(sla.met_previous, 0) AS met_previous,
  coalesce(sla.decided_previous, 0) AS decided_previous
FROM channels ch
LEFT JOIN channel_health h ON h.channel_id = ch.id
LEFT JOIN figures f ON f.channel_id = ch.id
LEFT JOIN open_alerts a ON a.channel_id = ch.id
LEFT JOIN sla ON sla.channel_id = ch.id
WHERE ch.archived_at IS NULL{conditions}
"""


def _channel_row(row: RowMapping) -> ChannelRow:
    revenue, before = float(row["revenue"]), float(row["revenue_previous"])
    trend = percent(revenue - before, before)
    score, change = row["score"], row["trend"]
    current: dict[str, float | None] = {
        "health": score,
        "revenue": revenue,
        "revenue_trend": trend,
        "churned": row["churned"],
        "open_alerts": row["open_alerts"],
        "sla_compliance": percent(row["met"], row["decided"]),
    }
    previous: dict[str, float | None] = {
        "health": None if score is None or change is None else score - change,
        "revenue": before,
        "revenue_trend": None,
        "churned": row["churned_previous"],
        "open_alerts": None,
        "sla_compliance": percent(row["met_previous"], row["decided_previous"]),
    }
    return ChannelRow(
        channel_id=row["channel_id"],
        name=row["name"],
        region=row["region"],
        band=row["band"],
        figures=ChannelFigures(**figures(current, previous)),
    )


async def channels(
    session: AsyncSession,
    window: Window,
    filters: ReportFilters,
    sort: ChannelSort,
    order: str,
    limit: int,
) -> ChannelsReport:
    """The leaderboard for the last period of the window, against the period before it."""
    refresh = await last_refresh(session)
    segments, params = report_filters.segments(filters)
    period = window.starts[-1]
    previous = periods.add(window.unit, period, -1)
    conditions = []
    if filters.channel_id is not None:
        conditions.append("ch.id = :f_channel_id")
    if filters.region is not None:
        conditions.append("ch.region = :f_region")
    where = "".join(f" AND {c}" for c in conditions)
    params |= {
        "unit": window.unit,
        "period": period,
        "previous": previous,
        "period_at": _midnight(period),
        "previous_at": _midnight(previous),
        "end_at": _midnight(window.until),
    }
    query = _CHANNELS.format(segments=segments, conditions=where)
    rows = [_channel_row(r) for r in (await session.execute(text(query), params)).mappings()]
    present = [r for r in rows if getattr(r.figures, sort).value is not None]
    missing = [r for r in rows if getattr(r.figures, sort).value is None]
    present.sort(key=lambda r: getattr(r.figures, sort).value, reverse=order == "desc")
    header = _header(window, filters, refresh) | {"since": period}
    return ChannelsReport(**header, sort=sort, order=order, channels=(present + missing)[:limit])


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


ALERT_GROUPS = {"rule": "a.rule_id::text", "owner": "a.owner", "all": "NULL::text"}

_ALERTS = """
WITH picked AS (
  SELECT a.*, {group} AS grp FROM alerts a
  WHERE (a.opened_at >= :since_at OR a.closed_at >= :since_at) AND a.opened_at < :until_at{conditions}
),
facts AS (
  SELECT date_trunc(:unit, opened_at AT TIME ZONE 'UTC')::date AS period, grp,
    1 AS opened, 0 AS resolved, 0 AS dismissed, NULL::float AS hours
  FROM picked WHERE opened_at >= :since_at
  UNION ALL
  SELECT date_trunc(:unit, closed_at AT TIME ZONE 'UTC')::date, grp, 0,
    (status = 'resolved')::int, (status = 'dismissed')::int,
    CASE WHEN status = 'resolved' THEN extract(epoch FROM closed_at - opened_at) / 3600 END
  FROM picked WHERE closed_at >= :since_at AND closed_at < :until_at
)
SELECT period, grp, sum(opened) AS opened, sum(resolved) AS resolved,
  sum(dismissed) AS dismissed,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY hours) AS median_hours
FROM facts GROUP BY 1, 2
"""


def _alert_conditions(filters: ReportFilters) -> tuple[str, dict[str, Any]]:
    """Channel, owner and region narrow alerts directly; tier and tag through their customer."""
    found, on_customer = [], []
    if filters.channel_id is not None:
        found.append("a.channel_id = :f_channel_id")
    if filters.owner is not None:
        found.append("a.owner = :f_owner")
    if filters.region is not None:
        found.append("a.channel_id IN (SELECT id FROM channels WHERE region = :f_region)")
    if filters.tier is not None:
        on_customer.append("c.value_tier = :f_tier")
    if filters.tag is not None:
        on_customer.append(":f_tag = ANY(c.tags)")
    if on_customer:
        found.append(
            "a.subject = 'customer' AND EXISTS (SELECT 1 FROM customers c WHERE "
            f"c.id = a.subject_id AND {' AND '.join(on_customer)})"
        )
    params = {f"f_{k}": v for k, v in filters.model_dump().items() if v is not None}
    return "".join(f" AND {c}" for c in found), params


async def alerts(
    session: AsyncSession, window: Window, filters: ReportFilters, group_by: AlertGroup
) -> AlertsReport:
    now = datetime.now(UTC)
    where, params = _alert_conditions(filters)
    params |= {
        "unit": window.unit,
        "since_at": _midnight(window.before),
        "until_at": _midnight(window.until),
    }
    query = _ALERTS.format(group=ALERT_GROUPS[group_by], conditions=where)
    rows = (await session.execute(text(query), params)).mappings().all()
    names: dict[str, str] = {}
    if group_by == "rule":
        named = await session.execute(text("SELECT id::text, name FROM alert_rules"))
        names = {str(i): str(n) for i, n in named.all()}
    cells = {(r["period"], r["grp"]): r for r in rows}
    groups = sorted({r["grp"] for r in rows}, key=lambda g: (g is None, g or ""))
    starts = [window.before, *window.starts]

    def values(start: date, group: str | None) -> dict[str, float | None]:
        row = cells.get((start, group))
        hours = row["median_hours"] if row else None
        return {
            "opened": row["opened"] if row else 0,
            "resolved": row["resolved"] if row else 0,
            "dismissed": row["dismissed"] if row else 0,
            "median_hours_to_resolve": None if hours is None else round(hours, 2),
        }

    out = [
        AlertGroupPeriod(
            **_period(window, start, now.date()),
            group=group,
            group_name=names.get(group) if group else None,
            figures=AlertFigures(**figures(values(start, group), values(before, group))),
        )
        for before, start in zip(starts, starts[1:], strict=False)
        for group in groups
    ]
    header = _header(window, filters, None) | {"data_as_of": now}
    return AlertsReport(**header, group_by=group_by, periods=out)

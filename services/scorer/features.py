"""Per-customer features as of a time, computed in PostgreSQL for a whole set of customers.

One statement reads only interactions with `occurred_at <= as_of` (tickets: created by then) and
groups them by customer: the live path and an as-of recompute run the very same SQL, so a score
is reproducible from stored data. It answers with one row of arrays, a column per feature, which
become numpy arrays without a Python loop over customers."""

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

Columns = dict[str, np.ndarray]

_RATING = "coalesce(i.satisfaction::float8, 1 + i.nps * 0.4)"
_WINDOWS = (30, 90, 180, 365, 455)
"""Window starts are passed as parameters (`:d30` is as_of - 30 days): an expression on a
parameter would be evaluated again for every interaction row."""

# Interactions are grouped by customer before the join: each monthly partition's index yields
# them in customer order, merged without a sort, and only one row per customer meets the
# customers table. The latest rating is the max of [time, rating] pairs: no per-customer sort.
_PER_INTERACTIONS = f"""
SELECT i.customer_id,
  max(i.occurred_at) FILTER (WHERE i.kind = 'order') AS last_order_at,
  max(i.occurred_at) AS last_at,
  min(i.occurred_at) FILTER (WHERE i.kind = 'order') AS first_order_at,
  min(i.occurred_at) AS first_at,
  count(*) FILTER (WHERE i.kind = 'order') AS orders_total,
  count(*) FILTER (WHERE i.kind = 'order' AND i.occurred_at > :d30) AS orders_30d,
  count(*) FILTER (WHERE i.kind = 'order' AND i.occurred_at > :d90) AS orders_90d,
  count(*) FILTER (WHERE i.kind = 'order' AND i.occurred_at > :d365) AS orders_365d,
  sum(i.amount) FILTER (WHERE i.kind = 'order' AND i.occurred_at > :d90) AS revenue_90d,
  sum(i.amount) FILTER (
    WHERE i.kind = 'order' AND i.occurred_at > :d180 AND i.occurred_at <= :d90)
    AS revenue_prev_90d,
  sum(i.amount) FILTER (WHERE i.kind = 'order' AND i.occurred_at > :d365) AS revenue_365d,
  count(*) FILTER (WHERE i.kind NOT IN ('order', 'payment', 'complaint')
    AND i.occurred_at > :d90) AS engagement_90d,
  count(*) FILTER (WHERE i.kind = 'complaint' AND i.occurred_at > :d90) AS complaints_90d,
  (max(ARRAY[extract(epoch FROM i.occurred_at), {_RATING}])
    FILTER (WHERE i.kind = 'feedback' AND {_RATING} IS NOT NULL))[2] AS satisfaction_latest,
  avg({_RATING}) FILTER (WHERE i.kind = 'feedback' AND i.occurred_at > :d90)
    AS satisfaction_avg,
  avg({_RATING}) FILTER (WHERE i.kind = 'feedback' AND i.occurred_at <= :d90
    AND i.occurred_at > :d455) AS satisfaction_prev_avg
FROM interactions i
WHERE i.occurred_at <= :as_of AND {{interactions}}
GROUP BY i.customer_id
"""

# Counts and sums of nothing are 0 for a customer without interactions.
_PER_CUSTOMER = f"""
SELECT c.id, c.lifecycle_stage,
  extract(epoch FROM :as_of - a.last_order_at) / 86400 AS days_since_order,
  extract(epoch FROM :as_of - a.last_at) / 86400 AS days_since_interaction,
  extract(epoch FROM :as_of - a.first_order_at) / 86400 AS days_since_first_order,
  coalesce(a.orders_total, 0) AS orders_total,
  coalesce(a.orders_30d, 0) AS orders_30d,
  coalesce(a.orders_90d, 0) AS orders_90d,
  coalesce(a.orders_365d, 0) AS orders_365d,
  coalesce(a.revenue_90d, 0) AS revenue_90d,
  coalesce(a.revenue_prev_90d, 0) AS revenue_prev_90d,
  coalesce(a.revenue_365d, 0) AS revenue_365d,
  coalesce(a.engagement_90d, 0) AS engagement_90d,
  coalesce(a.complaints_90d, 0) AS complaints_90d,
  a.satisfaction_latest, a.satisfaction_avg, a.satisfaction_prev_avg,
  extract(epoch FROM :as_of - least(a.first_at, c.created_at)) / 86400 AS tenure_days
FROM customers c
LEFT JOIN ({_PER_INTERACTIONS}) a ON a.customer_id = c.id
WHERE {{customers}}
"""

_TICKETS = """
SELECT t.customer_id,
  count(*) FILTER (WHERE t.resolved_at IS NULL OR t.resolved_at > :as_of) AS open_tickets,
  count(*) FILTER (WHERE t.kind = 'complaint' AND t.created_at > :d90) AS complaint_tickets_90d,
  count(*) FILTER (WHERE (t.first_response_breached OR t.resolution_breached)
    AND t.created_at > :d90) AS sla_breaches_90d
FROM tickets t
WHERE {tickets} AND t.created_at <= :as_of
GROUP BY t.customer_id
"""

_FROM_INTERACTIONS = (
    "days_since_order",
    "days_since_interaction",
    "days_since_first_order",
    "orders_total",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "revenue_90d",
    "revenue_prev_90d",
    "revenue_365d",
    "engagement_90d",
    "satisfaction_latest",
    "satisfaction_avg",
    "satisfaction_prev_avg",
    "tenure_days",
)

# All aggregates of one query read the rows in the same order, so the arrays line up.
_ARRAYS = ",\n  ".join(
    [
        *(f"array_agg(coalesce(f.{name}::float8, 'NaN')) AS {name}" for name in _FROM_INTERACTIONS),
        "array_agg((f.complaints_90d + coalesce(t.complaint_tickets_90d, 0))::float8)"
        " AS complaints_90d",
        "array_agg(coalesce(t.open_tickets, 0)::float8) AS open_tickets",
        "array_agg(coalesce(t.sla_breaches_90d, 0)::float8) AS sla_breaches_90d",
    ]
)

NAMES = (*_FROM_INTERACTIONS, "complaints_90d", "open_tickets", "sla_breaches_90d")


@dataclass(frozen=True)
class IdRange:
    """The customers with `start <= id < end` (no end: to the last one); a full recompute walks
    the id space in such ranges, which one index range scan reads without listing the ids."""

    start: uuid.UUID
    end: uuid.UUID | None


Customers = Sequence[uuid.UUID] | IdRange


def _selecting(column: str, by_range: bool, open_ended: bool) -> str:
    if not by_range:
        return f"{column} = ANY(:ids)"
    return f"{column} >= :start" + ("" if open_ended else f" AND {column} < :end")


@functools.cache
def _statement(by_range: bool, open_ended: bool) -> TextClause:
    # The interactions subquery names the chunk's customers itself: it is grouped before the
    # join, and each monthly partition's index scan needs the range or the ids.
    where = {
        "customers": _selecting("c.id", by_range, open_ended),
        "interactions": _selecting("i.customer_id", by_range, open_ended),
        "tickets": _selecting("t.customer_id", by_range, open_ended),
    }
    return text(f"""
WITH f AS ({_PER_CUSTOMER.format(**where)}), t AS ({_TICKETS.format(**where)})
SELECT array_agg(f.id) AS ids, array_agg(f.lifecycle_stage) AS stages,
  {_ARRAYS}
FROM f LEFT JOIN t ON t.customer_id = f.id
""")


@dataclass(frozen=True)
class Loaded:
    """The customers found, their lifecycle stages and one float64 array per feature (NaN where
    unknown, e.g. never ordered), all aligned."""

    ids: list[uuid.UUID]
    stages: list[str]
    columns: Columns


async def load_features(session: AsyncSession, customers: Customers, as_of: datetime) -> Loaded:
    """Features as of `as_of` of the customers that exist among those named or in the range."""
    params: dict[str, object] = {"as_of": as_of}
    params |= {f"d{days}": as_of - timedelta(days=days) for days in _WINDOWS}
    if isinstance(customers, IdRange):
        statement = _statement(True, customers.end is None)
        params |= {"start": customers.start, "end": customers.end}
    else:
        statement = _statement(False, False)
        params["ids"] = list(customers)
    row = (await session.execute(statement, params)).one()
    if row.ids is None:
        return Loaded([], [], {name: np.empty(0) for name in NAMES})
    columns = {name: np.array(getattr(row, name), dtype=np.float64) for name in NAMES}
    return Loaded(list(row.ids), list(row.stages), columns)

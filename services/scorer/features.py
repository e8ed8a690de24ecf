"""Per-customer features as of a time, computed in PostgreSQL for a whole set of customers.

One query over interactions and one over tickets, grouped by customer, read only rows with
`occurred_at <= as_of` (tickets: created by then): the live path and an as-of recompute run the
very same SQL, so a score is reproducible from stored data."""

import uuid
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

Columns = dict[str, np.ndarray]

_RATING = "coalesce(i.satisfaction::float8, 1 + i.nps * 0.4)"

# The latest rating is the max of [time, rating] pairs: no per-customer sort.
INTERACTION_FEATURES = text(f"""
SELECT c.id AS customer_id,
  extract(epoch FROM :as_of - max(i.occurred_at) FILTER (WHERE i.kind = 'order')) / 86400
    AS days_since_order,
  extract(epoch FROM :as_of - max(i.occurred_at)) / 86400 AS days_since_interaction,
  count(*) FILTER (WHERE i.kind = 'order' AND i.occurred_at > :as_of - interval '30 days')
    AS orders_30d,
  count(*) FILTER (WHERE i.kind = 'order' AND i.occurred_at > :as_of - interval '90 days')
    AS orders_90d,
  count(*) FILTER (WHERE i.kind = 'order' AND i.occurred_at > :as_of - interval '365 days')
    AS orders_365d,
  coalesce(sum(i.amount) FILTER (
    WHERE i.kind = 'order' AND i.occurred_at > :as_of - interval '90 days'), 0) AS revenue_90d,
  coalesce(sum(i.amount) FILTER (
    WHERE i.kind = 'order' AND i.occurred_at > :as_of - interval '180 days'
      AND i.occurred_at <= :as_of - interval '90 days'), 0) AS revenue_prev_90d,
  coalesce(sum(i.amount) FILTER (
    WHERE i.kind = 'order' AND i.occurred_at > :as_of - interval '365 days'), 0) AS revenue_365d,
  count(*) FILTER (WHERE i.kind NOT IN ('order', 'payment', 'complaint')
    AND i.occurred_at > :as_of - interval '90 days') AS engagement_90d,
  count(*) FILTER (WHERE i.kind = 'complaint' AND i.occurred_at > :as_of - interval '90 days')
    AS complaints_90d,
  (max(ARRAY[extract(epoch FROM i.occurred_at), {_RATING}])
    FILTER (WHERE i.kind = 'feedback' AND {_RATING} IS NOT NULL))[2] AS satisfaction_latest,
  avg({_RATING}) FILTER (WHERE i.kind = 'feedback' AND i.occurred_at > :as_of - interval '90 days')
    AS satisfaction_avg,
  avg({_RATING}) FILTER (WHERE i.kind = 'feedback' AND i.occurred_at <= :as_of - interval '90 days'
    AND i.occurred_at > :as_of - interval '455 days') AS satisfaction_prev_avg,
  extract(epoch FROM :as_of - least(min(i.occurred_at), c.created_at)) / 86400 AS tenure_days
FROM customers c
LEFT JOIN interactions i ON i.customer_id = c.id AND i.occurred_at <= :as_of
WHERE c.id = ANY(:ids)
GROUP BY c.id
""")

TICKET_FEATURES = text("""
SELECT t.customer_id,
  count(*) FILTER (WHERE t.resolved_at IS NULL OR t.resolved_at > :as_of) AS open_tickets,
  count(*) FILTER (WHERE t.kind = 'complaint' AND t.created_at > :as_of - interval '90 days')
    AS complaint_tickets_90d,
  count(*) FILTER (WHERE (t.first_response_breached OR t.resolution_breached)
    AND t.created_at > :as_of - interval '90 days') AS sla_breaches_90d
FROM tickets t
WHERE t.customer_id = ANY(:ids) AND t.created_at <= :as_of
GROUP BY t.customer_id
""")

NUMERIC = (
    "days_since_order",
    "days_since_interaction",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "revenue_90d",
    "revenue_prev_90d",
    "revenue_365d",
    "engagement_90d",
    "complaints_90d",
    "satisfaction_latest",
    "satisfaction_avg",
    "satisfaction_prev_avg",
    "tenure_days",
)


def _floats(values: Sequence[object]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)  # type: ignore[arg-type]


async def load_features(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID], as_of: datetime
) -> tuple[list[uuid.UUID], Columns]:
    """The customers that exist among `customer_ids`, and one float64 array per feature
    (NaN where unknown, e.g. never ordered), aligned with them."""
    params = {"ids": list(customer_ids), "as_of": as_of}
    rows = (await session.execute(INTERACTION_FEATURES, params)).all()
    ids = [row.customer_id for row in rows]
    columns: Columns = {name: _floats([getattr(r, name) for r in rows]) for name in NUMERIC}
    tickets = {r.customer_id: r for r in (await session.execute(TICKET_FEATURES, params)).all()}
    for name in ("open_tickets", "sla_breaches_90d"):
        columns[name] = np.array(
            [getattr(tickets[i], name) if i in tickets else 0 for i in ids], dtype=np.float64
        )
    complaint_tickets = np.array(
        [tickets[i].complaint_tickets_90d if i in tickets else 0 for i in ids], dtype=np.float64
    )
    columns["complaints_90d"] = columns["complaints_90d"] + complaint_tickets
    return ids, columns

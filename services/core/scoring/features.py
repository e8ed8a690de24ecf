"""Per-customer features as of a time T: one float64 array per feature, NaN meaning unknown."""

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

DAYS_SINCE_ORDER = "days_since_order"
DAYS_SINCE_INTERACTION = "days_since_interaction"
DAYS_SINCE_FIRST_ORDER = "days_since_first_order"
ORDERS_TOTAL = "orders_total"
ORDERS_30D = "orders_30d"
ORDERS_90D = "orders_90d"
ORDERS_365D = "orders_365d"
REVENUE_90D = "revenue_90d"
REVENUE_PREV_90D = "revenue_prev_90d"
ENGAGEMENT_90D = "engagement_90d"
OPEN_TICKETS = "open_tickets"
COMPLAINTS_90D = "complaints_90d"
SLA_BREACHES_90D = "sla_breaches_90d"
SATISFACTION_LATEST = "satisfaction_latest"
SATISFACTION_AVG = "satisfaction_avg"
SATISFACTION_PREV_AVG = "satisfaction_prev_avg"
TENURE_DAYS = "tenure_days"


@dataclass(frozen=True, eq=False)
class Features:
    """Columns of equal length, one row per customer.

    Days are counted back from T; windows end at T (`revenue_prev_90d` covers the 90 days before
    the latest 90). Counts and sums of nothing are 0; NaN is for what cannot be known, such as the
    days since the last order of a customer who never ordered, or a rating never given.
    """

    days_since_order: Array
    days_since_interaction: Array
    days_since_first_order: Array
    """Days since the first order ever; NaN for a customer who never ordered."""
    orders_total: Array
    """Orders ever placed up to T: with the first and last order, the customer's own rhythm."""
    orders_30d: Array
    orders_90d: Array
    orders_365d: Array
    revenue_90d: Array
    revenue_prev_90d: Array
    engagement_90d: Array
    """Non-order interactions (visits, calls, usage, ...) in the latest 90 days."""
    open_tickets: Array
    complaints_90d: Array
    sla_breaches_90d: Array
    satisfaction_latest: Array
    """The latest rating on a 1-5 scale (an NPS 0-10 answer is mapped to 1-5 by the caller)."""
    satisfaction_avg: Array
    """Mean rating of the latest 90 days."""
    satisfaction_prev_avg: Array
    """Mean rating before the latest 90 days, the baseline for a satisfaction drop."""
    tenure_days: Array

    def __post_init__(self) -> None:
        lengths = set()
        for field in fields(self):
            column = np.asarray(getattr(self, field.name), dtype=np.float64)
            if column.ndim != 1:
                raise ValueError(f"{field.name}: expected a 1-D array, got {column.ndim}-D")
            object.__setattr__(self, field.name, column)
            lengths.add(column.shape[0])
        if len(lengths) > 1:
            raise ValueError(f"feature columns differ in length: {sorted(lengths)}")

    def __len__(self) -> int:
        return int(self.tenure_days.shape[0])

    @classmethod
    def from_columns(cls, columns: Mapping[str, npt.ArrayLike]) -> "Features":
        """Build from a name -> column mapping holding exactly the feature names."""
        missing = [name for name in NAMES if name not in columns]
        unknown = sorted(set(columns) - set(NAMES))
        if missing or unknown:
            raise ValueError(f"feature columns: missing {missing}, unknown {unknown}")
        return cls(**{name: np.asarray(columns[name], dtype=np.float64) for name in NAMES})

    @classmethod
    def unknown(cls, n: int) -> "Features":
        """n customers about whom nothing is known (every column NaN)."""
        return cls(**{name: np.full(n, np.nan) for name in NAMES})


NAMES: tuple[str, ...] = tuple(field.name for field in fields(Features))

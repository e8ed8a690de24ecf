"""Value tiers A/B/C from RFM quantiles over the whole customer base (not per chunk)."""

import numpy as np
import numpy.typing as npt

from services.core.models.enums import ValueTier
from services.core.scoring.features import Array


def percentile_rank(x: Array) -> Array:
    """Mid-rank of each value in (0, 1]: ties share the mean of their ranks, order never matters."""
    _, group, counts = np.unique(x, return_inverse=True, return_counts=True)
    up_to = np.cumsum(counts)
    rank: Array = (2 * up_to - counts)[group] / (2.0 * x.shape[0])
    return rank


def _at_least_kth_largest(x: Array, k: int) -> npt.NDArray[np.bool_]:
    """Whether fewer than k values are strictly greater, i.e. x >= the k-th largest value."""
    if k <= 0:
        return np.zeros(x.shape, dtype=np.bool_)
    kth: float = np.partition(x, x.shape[0] - k)[x.shape[0] - k]
    return x >= kth


def value_tiers(
    days_since_order: npt.ArrayLike,
    orders_365d: npt.ArrayLike,
    revenue_365d: npt.ArrayLike,
    *,
    a_share: float = 0.2,
    b_share: float = 0.3,
) -> npt.NDArray[np.str_]:
    """A for the top `a_share` of customers with an order in the last 365 days, B for the next
    `b_share`, C for the rest and for customers without such an order.

    Customers are ranked by the mean of their recency, frequency and revenue percentile ranks.
    Equal RFM values always get the same tier: a tie across a cut-off goes to the higher tier.
    """
    if not (0 <= a_share and 0 <= b_share and a_share + b_share <= 1):
        raise ValueError("a_share and b_share must be non-negative and sum to at most 1")
    days = np.asarray(days_since_order, dtype=np.float64)
    orders = np.asarray(orders_365d, dtype=np.float64)
    revenue = np.nan_to_num(np.asarray(revenue_365d, dtype=np.float64), nan=0.0)
    tiers = np.full(days.shape[0], ValueTier.C.value)
    buyers = np.flatnonzero((orders > 0) & np.isfinite(days))
    n = buyers.shape[0]
    if n == 0:
        return tiers
    rfm = (
        percentile_rank(-days[buyers])
        + percentile_rank(orders[buyers])
        + percentile_rank(revenue[buyers])
    ) / 3.0
    top_ab = min(int((a_share + b_share) * n + 0.5), n)
    tiers[buyers[_at_least_kth_largest(rfm, top_ab)]] = ValueTier.B.value
    tiers[buyers[_at_least_kth_largest(rfm, int(a_share * n + 0.5))]] = ValueTier.A.value
    return tiers

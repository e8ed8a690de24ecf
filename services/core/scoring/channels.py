"""Channel health 0-100 from its customers' scores, its own activity and its ticket load."""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.core.scoring.features import Array
from services.core.scoring.health import HealthScores, combine, log_ramp, nonnegative
from services.core.scoring.profile import ScoringProfile


@dataclass(frozen=True, eq=False)
class ChannelScores(HealthScores):
    customers: npt.NDArray[np.intp]
    """Customers in the channel (scored or not)."""
    customer_score: Array
    """Revenue-weighted mean score of its scored customers; NaN when none is scored."""


def channel_health(
    customer_scores: npt.ArrayLike,
    customer_revenue_365d: npt.ArrayLike,
    customer_channel_index: npt.ArrayLike,
    n_channels: int,
    channel_activity_90d: npt.ArrayLike,
    channel_open_tickets: npt.ArrayLike,
    profile: ScoringProfile,
) -> ChannelScores:
    """Score channels 0..n_channels-1 from customer arrays (channel index -1 = no channel).

    Customers weigh by their non-negative revenue; a channel whose customers have no revenue
    takes their plain mean. Customers without a score (NaN) are left out of the mean; a channel
    with no scored customer earns no customer points. Ticket load is open tickets per customer.
    """
    scores = np.asarray(customer_scores, dtype=np.float64)
    revenue = nonnegative(np.asarray(customer_revenue_365d, dtype=np.float64))
    channel = np.asarray(customer_channel_index, dtype=np.intp)
    if channel.shape != scores.shape or revenue.shape != scores.shape:
        raise ValueError("customer arrays differ in length")
    if channel.size and channel.max() >= n_channels:
        raise ValueError(f"channel index {channel.max()} is not below n_channels={n_channels}")
    activity = np.asarray(channel_activity_90d, dtype=np.float64)
    tickets = np.asarray(channel_open_tickets, dtype=np.float64)
    if activity.shape != (n_channels,) or tickets.shape != (n_channels,):
        raise ValueError(f"channel arrays must have length n_channels={n_channels}")

    member = channel >= 0
    scored = member & ~np.isnan(scores)
    at, s, w = channel[scored], scores[scored], revenue[scored]
    weight = np.bincount(at, weights=w, minlength=n_channels)
    weighted = np.bincount(at, weights=w * s, minlength=n_channels)
    counted = np.bincount(at, minlength=n_channels)
    plain = np.bincount(at, weights=s, minlength=n_channels)
    mean = np.full(n_channels, np.nan)
    np.divide(plain, counted, out=mean, where=counted > 0)
    np.divide(weighted, weight, out=mean, where=weight > 0)

    customers = np.bincount(channel[member], minlength=n_channels)
    c = profile.channels
    load = nonnegative(tickets) / np.maximum(customers, 1) / c.open_tickets_bad_per_customer
    values = {
        "customers": np.clip(np.nan_to_num(mean, nan=0.0) / 100.0, 0.0, 1.0),
        "activity": log_ramp(activity, c.activity_target_90d),
        "tickets": 1.0 - np.minimum(load, 1.0),
    }
    result = combine(values, c.weights.normalised(), profile.bands)
    return ChannelScores(
        score=result.score,
        band=result.band,
        contributions=result.contributions,
        customers=customers,
        customer_score=mean,
    )

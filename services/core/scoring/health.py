"""Customer health scores 0-100: each factor's points are its normalised weight x a 0-1 value x 100.

Every factor value is a clipped linear (or log) ramp between profile thresholds, so the score is
monotone in each feature but one: more lifetime orders over the same span are a faster rhythm,
which makes the same silence more overdue and lowers cadence. Unknowns: counts given as NaN
count as 0; no order and no interaction scores no recency points; no revenue in either window,
no rating and fewer than two orders (no rhythm) take the profile's neutral values; unknown
tenure counts as new. A customer with no data at all therefore scores `100 x (w_cadence x 0.5 +
w_monetary_trend x 0.5 + w_support x 1 + w_satisfaction x 0.5)`: 27.5, red, under the default
profile (support counts as no burden, cadence, trend and satisfaction as neutral).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from itertools import combinations

import numpy as np
import numpy.typing as npt

from services.core.scoring.features import Array, Features
from services.core.scoring.profile import FACTORS, Bands, Cadence, ScoringProfile


class Band(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


_BAND_BY_LEVEL = np.array([Band.red.value, Band.yellow.value, Band.green.value])


@dataclass(frozen=True, eq=False)
class HealthScores:
    score: Array
    """0-100 in tenths of a point."""
    band: npt.NDArray[np.str_]
    contributions: dict[str, Array]
    """Points per factor, in tenths, adding up exactly to `score` (largest-remainder rounding)."""


def ramp(x: Array, zero_at: float, one_at: float) -> Array:
    """0 at `zero_at`, 1 at `one_at`, linear between and clipped outside; NaN stays NaN."""
    return np.clip((x - zero_at) / (one_at - zero_at), 0.0, 1.0)


def nonnegative(x: Array) -> Array:
    """NaN and negative values become 0."""
    return np.fmax(x, 0.0)


def log_ramp(count: Array, target: float) -> Array:
    """log(1 + count) scaled to reach 1 at `target` and clipped there: early counts matter most."""
    return np.minimum(np.log1p(nonnegative(count)) / float(np.log1p(target)), 1.0)


def overdue_ratio(features: Features, cadence: Cadence) -> Array:
    """Days since the last order over the mean interval between orders, that mean shrunk toward
    the typical interval (worth `typical_weight` intervals) and floored at `min_interval_days`.
    NaN for fewer than two orders or an unknown first or last order. More days since the last
    order can only raise it: with the first order kept, the span from first to last order and
    so the mean interval shrink as the silence grows."""
    f, c = features, cadence
    span = np.maximum(f.days_since_first_order - f.days_since_order, 0.0)  # NaN stays NaN
    intervals = np.where(f.orders_total >= 2, f.orders_total - 1.0, np.nan)
    mean = (span + c.typical_weight * c.typical_interval_days) / (intervals + c.typical_weight)
    return f.days_since_order / np.maximum(mean, c.min_interval_days)


def factor_values(features: Features, profile: ScoringProfile) -> dict[str, Array]:
    """Each factor's value in [0, 1] for every customer."""
    f, p = features, profile
    days = np.where(np.isnan(f.days_since_order), f.days_since_interaction, f.days_since_order)
    # fmax(NaN, 0) is 0: no order and no interaction earns no recency points.
    recency = np.fmax(ramp(days, p.recency.bad_days, p.recency.good_days), 0.0)

    frequency = 0.5 * (
        log_ramp(f.orders_90d, p.frequency.target_orders_90d)
        + log_ramp(f.orders_365d, p.frequency.target_orders_365d)
    )

    now, before = nonnegative(f.revenue_90d), nonnegative(f.revenue_prev_90d)
    with np.errstate(over="ignore"):  # a tiny denominator overflows; the ramp clips it to 1
        ratio = np.divide(now, before, out=np.zeros_like(now), where=before > 0)
        kept = ramp(ratio, p.monetary_trend.zero_at_ratio, p.monetary_trend.full_at_ratio)
    trend = p.monetary_trend
    # No revenue in either window: unknown for a customer who never ordered, but a full decline
    # for one who did, or a lapsed customer's score would rise once both windows are empty.
    never_ordered = np.isnan(f.days_since_order)
    monetary = np.where(
        before > 0,
        kept,
        np.where(now > 0, 1.0, np.where(never_ordered, trend.unknown, 0.0)),
    )

    c = p.cadence
    overdue = overdue_ratio(f, c)
    cadence = np.where(
        np.isnan(overdue), c.unknown, ramp(overdue, c.overdue_ratio, c.on_rhythm_ratio)
    )

    engagement = log_ramp(f.engagement_90d, p.engagement.target_90d)

    s = p.support
    burden = (
        nonnegative(f.complaints_90d) / s.complaints_bad
        + nonnegative(f.open_tickets) / s.open_tickets_bad
        + nonnegative(f.sla_breaches_90d) / s.sla_breaches_bad
    )
    support = 1.0 - np.minimum(burden, 1.0)

    sat = p.satisfaction
    rating = np.where(np.isnan(f.satisfaction_latest), f.satisfaction_avg, f.satisfaction_latest)
    current = np.where(np.isnan(f.satisfaction_avg), f.satisfaction_latest, f.satisfaction_avg)
    drop = nonnegative(f.satisfaction_prev_avg - current)
    level = ramp(rating, sat.poor, sat.good) - drop / sat.full_drop
    satisfaction = np.where(np.isnan(rating), sat.unknown, np.clip(level, 0.0, 1.0))

    # Tenure counts the active span, first seen to last interaction: it must not grow while a
    # customer is silent, or waiting would raise a lapsed customer's score.
    silent = np.where(np.isnan(f.days_since_interaction), f.tenure_days, f.days_since_interaction)
    tenure = np.fmax(ramp(f.tenure_days - silent, 0.0, p.tenure.mature_days), 0.0)

    values = {
        "recency": recency,
        "frequency": frequency,
        "cadence": cadence,
        "monetary_trend": monetary,
        "engagement": engagement,
        "support": support,
        "satisfaction": satisfaction,
        "tenure": tenure,
    }
    assert tuple(values) == FACTORS
    return values


def combine(
    values: Mapping[str, Array], weights: Mapping[str, float], bands: Bands
) -> HealthScores:
    """Points = weight (normalised) x value x 100, rounded to tenths that add up to the score."""
    names = list(weights)
    tenths = [values[name] * (weights[name] * 1000.0) for name in names]
    total = np.rint(sum(tenths, start=np.zeros_like(tenths[0])))
    floors = [np.floor(t) for t in tenths]
    remainders = [t - f for t, f in zip(tenths, floors, strict=True)]
    # Hand the tenths lost to flooring to the factors with the largest remainders (the earlier
    # factor first on equal ones). Pairwise comparisons of whole columns keep this vectorised.
    short = (total - sum(floors, start=np.zeros_like(total))).astype(np.int8)
    ahead = [np.zeros(total.shape, dtype=np.int8) for _ in names]
    for i, j in combinations(range(len(names)), 2):
        j_first = remainders[j] > remainders[i]
        ahead[i] += j_first
        ahead[j] += ~j_first
    for floor, rank in zip(floors, ahead, strict=True):
        floor += rank < short
    score = total / 10.0
    return HealthScores(
        score=score,
        band=bands_of(score, bands),
        contributions={name: floor / 10.0 for name, floor in zip(names, floors, strict=True)},
    )


def score(features: Features, profile: ScoringProfile) -> HealthScores:
    return combine(factor_values(features, profile), profile.weights.normalised(), profile.bands)


def bands_of(score: Array, bands: Bands) -> npt.NDArray[np.str_]:
    level = (score >= bands.yellow).astype(np.intp) + (score >= bands.green)
    return _BAND_BY_LEVEL[level]


def trend(current: npt.ArrayLike, previous: npt.ArrayLike) -> Array:
    """Points gained since the previous score; NaN where either is unknown."""
    change = np.asarray(current, dtype=np.float64) - np.asarray(previous, dtype=np.float64)
    return np.round(change, 1)

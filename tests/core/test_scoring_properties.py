"""Properties of the health score over generated customers (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.scoring.features import NAMES, Features
from services.core.scoring.health import score
from services.core.scoring.profile import DEFAULT_PROFILE, FACTORS, ScoringProfile

feature = st.one_of(st.just(float("nan")), st.floats(min_value=0, max_value=5_000))
# Lifetime orders in the tens, not thousands: the mean interval between them then spans the
# same days as the recency ramp, where the two factors could disagree.
orders = st.one_of(st.just(float("nan")), st.integers(min_value=0, max_value=60).map(float))
customer = st.fixed_dictionaries(dict.fromkeys(NAMES, feature) | {"orders_total": orders})
# The default profile leaves some factors at 0: the properties must hold wherever they weigh.
PROFILES = pytest.mark.parametrize(
    "profile",
    [DEFAULT_PROFILE, ScoringProfile.model_validate({"weights": dict.fromkeys(FACTORS, 1)})],
    ids=["default", "every_factor"],
)


def _features(rows: list[dict[str, float]]) -> Features:
    return Features.from_columns({name: [row[name] for row in rows] for name in NAMES})


@given(st.lists(customer, min_size=1, max_size=50))
@settings(max_examples=200, deadline=None)
def test_scores_stay_between_0_and_100_and_add_up(rows: list[dict[str, float]]) -> None:
    result = score(_features(rows), DEFAULT_PROFILE)
    assert np.all((result.score >= 0) & (result.score <= 100))
    total = np.sum(list(result.contributions.values()), axis=0)
    assert np.allclose(total, result.score, atol=0.051)


@PROFILES
@given(customer, st.floats(min_value=0, max_value=1_000), st.floats(min_value=0, max_value=1_000))
@settings(max_examples=200, deadline=None)
def test_a_more_recent_order_never_lowers_the_score(
    profile: ScoringProfile, row: dict[str, float], days: float, more_days: float
) -> None:
    recent = {**row, "days_since_order": days}
    older = {**row, "days_since_order": days + more_days}
    result = score(_features([recent, older]), profile)
    assert result.score[0] >= result.score[1]


@PROFILES
@given(customer, st.floats(min_value=0, max_value=1_000))
@settings(max_examples=200, deadline=None)
def test_waiting_without_an_order_never_raises_the_score(
    profile: ScoringProfile, row: dict[str, float], waited: float
) -> None:
    """Time passing moves every day count on together: the cadence factor's span between the
    first and the last order stays, the silence grows."""
    days = ("days_since_order", "days_since_interaction", "days_since_first_order", "tenure_days")
    later = row | {name: row[name] + waited for name in days}
    result = score(_features([row, later]), profile)
    assert result.score[0] >= result.score[1]


@PROFILES
def test_a_lapsed_buyer_never_recovers_by_waiting(profile: ScoringProfile) -> None:
    """A one-time buyer's score only falls as days pass, also once no revenue window holds the
    order any more (the revenue trend then counts as a full decline, not as unknown)."""
    days = np.array([10.0, 100, 179, 181, 300, 400, 800])
    columns = {name: np.zeros_like(days) for name in NAMES}
    columns.update(
        days_since_order=days,
        days_since_interaction=days,
        days_since_first_order=days,
        orders_total=np.ones_like(days),
        orders_90d=(days <= 90).astype(float),
        orders_365d=(days <= 365).astype(float),
        revenue_90d=np.where(days <= 90, 500.0, 0.0),
        revenue_prev_90d=np.where((days > 90) & (days <= 180), 500.0, 0.0),
        satisfaction_latest=np.full_like(days, np.nan),
        satisfaction_avg=np.full_like(days, np.nan),
        satisfaction_prev_avg=np.full_like(days, np.nan),
        tenure_days=days,
    )
    result = score(Features.from_columns(columns), profile)
    assert np.all(np.diff(result.score) <= 0), result.score

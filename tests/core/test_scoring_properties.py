"""Properties of the health score over generated customers (hypothesis)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.scoring.features import NAMES, Features
from services.core.scoring.health import score
from services.core.scoring.profile import DEFAULT_PROFILE

feature = st.one_of(st.just(float("nan")), st.floats(min_value=0, max_value=5_000))
customer = st.fixed_dictionaries(dict.fromkeys(NAMES, feature))


def _features(rows: list[dict[str, float]]) -> Features:
    return Features.from_columns({name: [row[name] for row in rows] for name in NAMES})


@given(st.lists(customer, min_size=1, max_size=50))
@settings(max_examples=200, deadline=None)
def test_scores_stay_between_0_and_100_and_add_up(rows: list[dict[str, float]]) -> None:
    result = score(_features(rows), DEFAULT_PROFILE)
    assert np.all((result.score >= 0) & (result.score <= 100))
    total = np.sum(list(result.contributions.values()), axis=0)
    assert np.allclose(total, result.score, atol=0.051)


@given(customer, st.floats(min_value=0, max_value=1_000), st.floats(min_value=0, max_value=1_000))
@settings(max_examples=200, deadline=None)
def test_a_more_recent_order_never_lowers_the_score(
    row: dict[str, float], days: float, more_days: float
) -> None:
    recent = {**row, "days_since_order": days}
    older = {**row, "days_since_order": days + more_days}
    result = score(_features([recent, older]), DEFAULT_PROFILE)
    assert result.score[0] >= result.score[1]


def test_a_lapsed_buyer_never_recovers_by_waiting() -> None:
    """A one-time buyer's score only falls as days pass, also once no revenue window holds the
    order any more (the revenue trend then counts as a full decline, not as unknown)."""
    days = np.array([10.0, 100, 179, 181, 300, 400, 800])
    columns = {name: np.zeros_like(days) for name in NAMES}
    columns.update(
        days_since_order=days,
        days_since_interaction=days,
        orders_90d=(days <= 90).astype(float),
        orders_365d=(days <= 365).astype(float),
        revenue_90d=np.where(days <= 90, 500.0, 0.0),
        revenue_prev_90d=np.where((days > 90) & (days <= 180), 500.0, 0.0),
        satisfaction_latest=np.full_like(days, np.nan),
        satisfaction_avg=np.full_like(days, np.nan),
        satisfaction_prev_avg=np.full_like(days, np.nan),
        tenure_days=days,
    )
    result = score(Features.from_columns(columns), DEFAULT_PROFILE)
    assert np.all(np.diff(result.score) <= 0), result.score

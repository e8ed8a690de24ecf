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

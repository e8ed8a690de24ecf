"""Alert rule conditions over feature arrays: pure, no I/O."""

import numpy as np
import pytest
from pydantic import ValidationError

from services.core.alerts import Subjects, applies_to, evaluate, parse_params
from services.core.models.enums import AlertKind, AlertSubject

NAN = np.nan


def _subjects(**columns: list[float]) -> Subjects:
    n = len(next(iter(columns.values())))
    score = np.array(columns.pop("score", [50.0] * n), dtype=np.float64)
    trend = np.array(columns.pop("trend", [0.0] * n), dtype=np.float64)
    band = np.where(score >= 70, "green", np.where(score >= 40, "yellow", "red"))
    return Subjects(
        score, band, trend, {k: np.array(v, dtype=np.float64) for k, v in columns.items()}
    )


def test_inactivity_counts_from_the_first_day_when_never_active() -> None:
    subjects = _subjects(days_since_interaction=[10, 61, NAN], tenure_days=[400, 400, 90])
    mask, reasons = evaluate(AlertKind.inactivity, {"days": 60}, subjects)
    assert mask.tolist() == [False, True, True]
    assert [r["days_since_interaction"] for r in reasons] == [61, 90]
    assert reasons[0]["params"] == {"days": 60, "of": "interaction"}


def test_inactivity_of_orders_reads_days_since_order() -> None:
    subjects = _subjects(
        days_since_interaction=[1, 1], days_since_order=[59, 60], tenure_days=[900, 900]
    )
    mask, _ = evaluate(AlertKind.inactivity, {"days": 60, "of": "order"}, subjects)
    assert mask.tolist() == [False, True]


def test_order_value_drop_needs_a_previous_window_with_orders() -> None:
    subjects = _subjects(revenue_90d=[50, 80, 0, 10], revenue_prev_90d=[100, 100, 0, 0])
    mask, reasons = evaluate(AlertKind.order_value_drop, {"percent": 30}, subjects)
    assert mask.tolist() == [True, False, False, False]
    assert reasons[0]["drop_percent"] == 50.0


@pytest.mark.parametrize(
    ("kind", "params", "column", "values", "expected"),
    [
        (AlertKind.complaints, {"count": 3}, "complaints_90d", [2, 3, 7], [False, True, True]),
        (AlertKind.sla_breach, {"count": 1}, "sla_breaches_90d", [0, 1, 2], [False, True, True]),
    ],
)
def test_counts_reach_the_threshold(
    kind: AlertKind,
    params: dict[str, int],
    column: str,
    values: list[float],
    expected: list[bool],
) -> None:
    mask, _ = evaluate(kind, params, _subjects(**{column: values}))
    assert mask.tolist() == expected


def test_score_rules() -> None:
    subjects = _subjects(score=[80, 45, 20], trend=[-12, -3, NAN])
    assert evaluate(AlertKind.score_below, {"score": 40}, subjects)[0].tolist() == [
        False,
        False,
        True,
    ]
    drop, reasons = evaluate(AlertKind.score_drop, {"points": 10}, subjects)
    assert drop.tolist() == [True, False, False]  # no score 30 days ago: no drop
    assert reasons[0]["change_30d"] == -12
    red, _ = evaluate(AlertKind.band_change, {"to": ["red"]}, subjects)
    assert red.tolist() == [False, False, True]
    worse, _ = evaluate(AlertKind.band_change, {"to": ["yellow", "red"]}, subjects)
    assert worse.tolist() == [False, True, True]


def test_satisfaction_drop() -> None:
    subjects = _subjects(satisfaction_avg=[3.0, 4.5, NAN], satisfaction_prev_avg=[4.5, 4.5, 5])
    mask, reasons = evaluate(AlertKind.satisfaction_drop, {"points": 1}, subjects)
    assert mask.tolist() == [True, False, False]
    assert reasons[0]["satisfaction_prev_avg"] == 4.5


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        (AlertKind.inactivity, {"days": 0}),
        (AlertKind.inactivity, {"days": 10, "of": "visit"}),
        (AlertKind.band_change, {"to": ["green"]}),
        (AlertKind.band_change, {"to": []}),
        (AlertKind.score_below, {"score": "low"}),
        (AlertKind.complaints, {"count": 2, "window": 30}),
        (AlertKind.order_value_drop, {}),
    ],
)
def test_bad_params_are_refused(kind: AlertKind, params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        parse_params(kind, params)


def test_channels_take_score_rules_only() -> None:
    assert applies_to(AlertKind.band_change, AlertSubject.channel)
    assert not applies_to(AlertKind.inactivity, AlertSubject.channel)
    assert all(applies_to(kind, AlertSubject.customer) for kind in AlertKind)

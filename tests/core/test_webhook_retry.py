import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.webhooks.retry import (
    MAX_ATTEMPTS,
    SCHEDULE,
    Outcome,
    classify,
    next_delay,
    parse_retry_after,
)

STEPS = [
    timedelta(seconds=5),
    timedelta(seconds=300),
    timedelta(seconds=1800),
    timedelta(seconds=7200),
    timedelta(seconds=18000),
    timedelta(seconds=36000),
    timedelta(seconds=36000),
]
NOW = datetime(2015, 10, 21, 7, 0, tzinfo=UTC)


class FixedRandom(random.Random):
    """A generator whose every draw in [0, 1) is `value`."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_eight_attempts_spread_over_a_day() -> None:
    assert MAX_ATTEMPTS == 8
    assert list(SCHEDULE) == STEPS
    assert sum(STEPS, timedelta()) == timedelta(hours=27, minutes=35, seconds=5)


def test_the_schedule_with_a_seeded_generator() -> None:
    rng = random.Random(20240601)
    for attempt, step in enumerate(STEPS, start=1):
        delay = next_delay(attempt, None, rng)
        assert delay is not None
        assert step * 0.8 <= delay <= step * 1.2, (attempt, delay)
    assert next_delay(8, None, rng) is None
    assert next_delay(9, None, rng) is None


def test_the_same_seed_gives_the_same_delays() -> None:
    first, second = random.Random(7), random.Random(7)
    assert [next_delay(a, None, first) for a in range(1, 9)] == [
        next_delay(a, None, second) for a in range(1, 9)
    ]


def test_jitter_reaches_both_ends_of_twenty_percent() -> None:
    assert next_delay(2, None, FixedRandom(0.0)) == timedelta(seconds=240)
    assert next_delay(2, None, FixedRandom(0.5)) == timedelta(seconds=300)
    near_top = next_delay(2, None, FixedRandom(0.999999))
    assert near_top is not None
    assert timedelta(seconds=359.99) < near_top <= timedelta(seconds=360)


def test_jitter_spreads_delays() -> None:
    rng = random.Random(3)
    delays = {next_delay(1, None, rng) for _ in range(50)}
    assert len(delays) == 50
    assert min(d for d in delays if d is not None) < timedelta(seconds=4.5)
    assert max(d for d in delays if d is not None) > timedelta(seconds=5.5)


def test_a_longer_retry_after_wins_exactly() -> None:
    assert next_delay(1, timedelta(seconds=60), FixedRandom(0.5)) == timedelta(seconds=60)


def test_a_shorter_retry_after_does_not_shorten_the_step() -> None:
    assert next_delay(3, timedelta(seconds=10), FixedRandom(0.5)) == timedelta(minutes=30)
    assert next_delay(3, timedelta(0), FixedRandom(0.0)) == timedelta(minutes=24)


def test_retry_after_is_capped_at_a_day() -> None:
    assert next_delay(1, timedelta(hours=48), FixedRandom(0.5)) == timedelta(hours=24)


def test_retry_after_buys_no_extra_attempt() -> None:
    assert next_delay(8, timedelta(seconds=1), FixedRandom(0.5)) is None


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        next_delay(0, None, FixedRandom(0.5))


@given(
    attempt=st.integers(min_value=1, max_value=7),
    retry_after=st.none() | st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=100)),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_bounds(attempt: int, retry_after: timedelta | None, seed: int) -> None:
    delay = next_delay(attempt, retry_after, random.Random(seed))
    step = STEPS[attempt - 1]
    assert delay is not None
    assert delay >= step * 0.8
    assert delay <= max(step * 1.2, timedelta(hours=24))
    if retry_after is None or retry_after <= step * 0.8:
        assert delay <= step * 1.2
    else:
        assert delay >= min(retry_after, timedelta(hours=24))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", timedelta(seconds=120)),
        (" 7 ", timedelta(seconds=7)),
        ("0", timedelta(0)),
        ("Wed, 21 Oct 2015 07:28:00 GMT", timedelta(minutes=28)),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", timedelta(minutes=28)),  # RFC 850, obsolete
        ("Wed, 21 Oct 2015 09:00:00 +0800", timedelta(0)),  # 01:00 UTC: past
        ("Tue, 20 Oct 2015 07:28:00 GMT", timedelta(0)),
    ],
)
def test_parse_retry_after(value: str, expected: timedelta) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    "value",
    [None, "", "soon", "-5", "1.5", "1e3", "12 s", "Wed, 32 Oct 2015 07:28:00 GMT", "9" * 40],
)
def test_unusable_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_parse_retry_after_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone"):
        parse_retry_after("5", datetime(2015, 10, 21, 7, 0))


@given(st.text(max_size=60))
def test_parse_retry_after_never_raises_or_goes_negative(value: str) -> None:
    parsed = parse_retry_after(value, NOW)
    assert parsed is None or parsed >= timedelta(0)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.delivered),
        (201, Outcome.delivered),
        (202, Outcome.delivered),
        (204, Outcome.delivered),
        (299, Outcome.delivered),
        (410, Outcome.gone),
        (None, Outcome.retry),
        (100, Outcome.retry),
        (300, Outcome.retry),
        (301, Outcome.retry),
        (302, Outcome.retry),
        (304, Outcome.retry),
        (307, Outcome.retry),
        (308, Outcome.retry),
        (400, Outcome.retry),
        (401, Outcome.retry),
        (403, Outcome.retry),
        (404, Outcome.retry),
        (408, Outcome.retry),
        (409, Outcome.retry),
        (413, Outcome.retry),
        (429, Outcome.retry),
        (500, Outcome.retry),
        (502, Outcome.retry),
        (503, Outcome.retry),
        (504, Outcome.retry),
    ],
)
def test_classify(status: int | None, outcome: Outcome) -> None:
    assert classify(status) is outcome

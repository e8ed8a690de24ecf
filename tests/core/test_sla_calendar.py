"""SLA working-time arithmetic: hand-computed deadlines, DST, spec parsing and properties."""

import time as clock
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.sla.calendar import (
    MIDNIGHT,
    WEEKDAYS,
    BusinessHours,
    CalendarError,
    add_working_time,
    working_time_between,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SANTIAGO = ZoneInfo("America/Santiago")
HOUR = timedelta(hours=1)
WORKDAYS = WEEKDAYS[:5]


def office(zone: str = "Asia/Shanghai", *, holidays: tuple[str, ...] = ()) -> BusinessHours:
    """09:00-18:00 Monday to Friday."""
    weekly = {day: [["09:00", "18:00"]] for day in WORKDAYS}
    return BusinessHours.parse({"timezone": zone, "weekly": weekly, "holidays": list(holidays)})


def around_the_clock(
    zone: ZoneInfo, opens: time = time(0), closes: time = MIDNIGHT
) -> BusinessHours:
    return BusinessHours(zone, (((opens, closes),),) * 7)


def sh(day: int, hour: int, minute: int = 0) -> datetime:
    """A January 2026 wall time in Shanghai: the 2nd is a Friday, the 5th a Monday."""
    return datetime(2026, 1, day, hour, minute, tzinfo=SHANGHAI)


# Hand-computed deadlines on 09:00-18:00 weekdays in Shanghai.


def test_friday_evening_ticket_is_due_monday_noon() -> None:
    # One hour left on Friday, three more from Monday 09:00.
    assert add_working_time(sh(2, 17), 4 * HOUR, office()) == sh(5, 12)
    assert working_time_between(sh(2, 17), sh(5, 12), office()) == 4 * HOUR


def test_weekend_ticket_counts_from_monday_opening() -> None:
    assert add_working_time(sh(3, 10), 4 * HOUR, office()) == sh(5, 13)
    assert working_time_between(sh(3, 10), sh(5, 9), office()) == timedelta(0)


def test_holiday_monday_moves_the_deadline_to_tuesday() -> None:
    hours = office(holidays=("2026-01-05",))
    assert add_working_time(sh(2, 17), 4 * HOUR, hours) == sh(6, 12)


def test_lunch_break_does_not_count() -> None:
    split = {day: [["09:00", "12:00"], ["13:00", "18:00"]] for day in WORKDAYS}
    hours = BusinessHours.parse({"timezone": "Asia/Shanghai", "weekly": split})
    assert add_working_time(sh(5, 10), 4 * HOUR, hours) == sh(5, 15)
    assert add_working_time(sh(5, 11, 30), HOUR, hours) == sh(5, 13, 30)
    assert add_working_time(sh(5, 12, 15), HOUR, hours) == sh(5, 14)
    assert working_time_between(sh(5, 9), sh(5, 18), hours) == 8 * HOUR


def test_a_deadline_ending_at_closing_time_stays_on_that_day() -> None:
    assert add_working_time(sh(5, 9), 9 * HOUR, office()) == sh(5, 18)
    assert add_working_time(sh(5, 9), 9 * HOUR + timedelta(microseconds=1), office()) == sh(
        6, 9
    ) + timedelta(microseconds=1)


def test_pause_in_working_hours_shifts_the_deadline_by_its_length() -> None:
    assert add_working_time(sh(5, 9), 4 * HOUR, office()) == sh(5, 13)
    pauses = [(sh(5, 10), sh(5, 12))]
    assert add_working_time(sh(5, 9), 4 * HOUR, office(), pauses) == sh(5, 15)
    assert working_time_between(sh(5, 9), sh(5, 15), office(), pauses) == 4 * HOUR


def test_pause_outside_working_hours_shifts_nothing() -> None:
    pauses = [(sh(2, 18), sh(3, 12)), (sh(4, 8), sh(5, 9))]
    assert add_working_time(sh(2, 17), 4 * HOUR, office(), pauses) == sh(5, 12)


def test_overlapping_unsorted_pauses_count_once() -> None:
    pauses = [(sh(5, 10, 30), sh(5, 12)), (sh(5, 10), sh(5, 11)), (sh(5, 11, 30), sh(5, 11, 45))]
    assert add_working_time(sh(5, 9), 4 * HOUR, office(), pauses) == sh(5, 15)


def test_pause_that_began_before_the_ticket_holds_its_clock() -> None:
    pauses = [(sh(5, 8), sh(5, 10))]
    assert add_working_time(sh(5, 9), 4 * HOUR, office(), pauses) == sh(5, 14)


def test_pause_over_several_days_resumes_after_it() -> None:
    # Eight hours on Monday 09-17, paused until Wednesday 10:00, eight more hours to 18:00.
    pauses = [(sh(5, 17), sh(7, 10))]
    assert add_working_time(sh(5, 9), 16 * HOUR, office(), pauses) == sh(7, 18)
    assert working_time_between(sh(5, 9), sh(7, 18), office(), pauses) == 16 * HOUR


def test_around_the_clock_with_overlapping_pauses() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    pauses = [
        (start + 20 * HOUR, start + 21 * HOUR),
        (start + 2 * HOUR, start + 4 * HOUR),
        (start + 3 * HOUR, start + 5 * HOUR),
    ]
    assert add_working_time(start, 10 * HOUR, None) == start + 10 * HOUR
    assert add_working_time(start, 10 * HOUR, None, pauses) == start + 13 * HOUR
    assert working_time_between(start, start + 24 * HOUR, None, pauses) == 20 * HOUR


def test_zero_duration_is_due_at_once_even_when_closed() -> None:
    saturday = sh(3, 10)
    assert add_working_time(saturday, timedelta(0), office()) == saturday
    assert add_working_time(saturday, timedelta(0), office()).tzinfo is UTC


def test_working_time_is_zero_when_end_is_not_after_start() -> None:
    assert working_time_between(sh(5, 12), sh(5, 10), office()) == timedelta(0)
    assert working_time_between(sh(5, 12), sh(5, 12), None) == timedelta(0)


# Daylight saving time: business hours follow the local wall clock, durations are real time.


def test_new_york_business_hours_follow_the_clock_change() -> None:
    hours = office("America/New_York")
    # Friday 17:00 EST (22:00 UTC): one hour left, then Monday 09:00 EDT (13:00 UTC) + 1 h.
    friday = datetime(2026, 3, 6, 17, tzinfo=NEW_YORK)
    due = add_working_time(friday, 2 * HOUR, hours)
    assert due == datetime(2026, 3, 9, 14, tzinfo=UTC)  # not 15:00 UTC, as a fixed -05:00 gives
    assert due.astimezone(NEW_YORK).hour == 10


def test_new_york_around_the_clock_counts_real_hours() -> None:
    # 24 real hours from Saturday noon EST end at 13:00 EDT on Sunday 8 March.
    saturday = datetime(2026, 3, 7, 12, tzinfo=NEW_YORK)
    due = add_working_time(saturday, 24 * HOUR, None)
    assert due == datetime(2026, 3, 8, 17, tzinfo=UTC)
    assert due.astimezone(NEW_YORK) == datetime(2026, 3, 8, 13, tzinfo=NEW_YORK)


def test_berlin_whole_days_hold_23_and_25_hours_on_change_days() -> None:
    hours = around_the_clock(BERLIN)
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    for day, length in ((spring, 23 * HOUR), (autumn, 25 * HOUR), (date(2026, 6, 1), 24 * HOUR)):
        start = datetime.combine(day, time(0), BERLIN)
        end = datetime.combine(day + timedelta(days=1), time(0), BERLIN)
        assert working_time_between(start, end, hours) == length
        assert add_working_time(start, length, hours) == end


def test_berlin_interval_starting_in_the_skipped_hour_opens_at_the_jump() -> None:
    hours = around_the_clock(BERLIN, time(2, 30), time(4))
    spring = datetime(2026, 3, 29, tzinfo=BERLIN)
    assert working_time_between(spring, spring + 24 * HOUR, hours) == HOUR
    due = add_working_time(spring, timedelta(minutes=1), hours)
    assert due == datetime(2026, 3, 29, 1, 1, tzinfo=UTC)  # 03:01 CEST


def test_berlin_interval_starting_in_the_repeated_hour_opens_at_its_first_occurrence() -> None:
    hours = around_the_clock(BERLIN, time(2, 30), time(4))
    autumn = datetime(2026, 10, 25, tzinfo=BERLIN)
    assert working_time_between(autumn, autumn + 24 * HOUR, hours) == 2.5 * HOUR
    assert add_working_time(autumn, timedelta(minutes=1), hours) == datetime(
        2026, 10, 25, 0, 31, tzinfo=UTC
    )


def test_santiago_day_whose_midnight_is_skipped_joins_the_day_before() -> None:
    # On Sunday 6 September 2026 Santiago's clocks go from 00:00 straight to 01:00.
    hours = around_the_clock(SANTIAGO)
    saturday = datetime(2026, 9, 5, tzinfo=SANTIAGO)
    monday = datetime(2026, 9, 7, tzinfo=SANTIAGO)
    assert working_time_between(saturday, monday, hours) == 47 * HOUR
    assert add_working_time(saturday, 24 * HOUR, hours) == datetime(2026, 9, 6, 4, tzinfo=UTC)


# Input that cannot be used.


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 1, 5, 9)
    with pytest.raises(ValueError, match="start: .* has no timezone"):
        add_working_time(naive, HOUR, office())
    with pytest.raises(ValueError, match="end: .* has no timezone"):
        working_time_between(sh(5, 9), naive, office())
    with pytest.raises(ValueError, match=r"pauses\[0\]\[1\]: .* has no timezone"):
        add_working_time(sh(5, 9), HOUR, None, [(sh(5, 10), naive)])


def test_negative_duration_and_reversed_pause_are_refused() -> None:
    with pytest.raises(ValueError, match="duration: .* is negative"):
        add_working_time(sh(5, 9), -HOUR, office())
    with pytest.raises(ValueError, match=r"pauses\[0\]: ends at .* before it starts"):
        add_working_time(sh(5, 9), HOUR, office(), [(sh(5, 11), sh(5, 10))])


def test_endless_holidays_raise_instead_of_looping() -> None:
    mondays = tuple(
        (date(2026, 1, 5) + timedelta(weeks=week)).isoformat() for week in range(11 * 53)
    )
    hours = BusinessHours.parse(
        {"timezone": "UTC", "weekly": {"mon": [["09:00", "10:00"]]}, "holidays": list(mondays)}
    )
    with pytest.raises(CalendarError, match="holidays: no working time"):
        add_working_time(datetime(2026, 1, 1, tzinfo=UTC), HOUR, hours)
    # Measuring a closed span is still fine: its end bounds the walk.
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2037, 1, 1, tzinfo=UTC)
    assert working_time_between(start, end, hours) == timedelta(0)


def test_a_deadline_past_year_9999_is_a_calendar_error() -> None:
    start = datetime(9999, 12, 30, tzinfo=UTC)
    with pytest.raises(CalendarError, match="duration"):
        add_working_time(start, timedelta(days=5), None)
    with pytest.raises(CalendarError, match="duration"):
        add_working_time(start, timedelta(days=5), office("UTC"))


def test_a_one_year_target_takes_milliseconds() -> None:
    # Day-by-day walking: a year of working time on 45-hour weeks spans about 3.7 calendar years.
    hours, start = office(), sh(2, 17)
    best = float("inf")
    for _ in range(3):
        began = clock.perf_counter()
        due = add_working_time(start, timedelta(days=365), hours)
        best = min(best, clock.perf_counter() - began)
    assert working_time_between(start, due, hours) == timedelta(days=365)
    assert best < 0.1


# Parsing and writing the business-hours spec.

SPEC: dict[str, Any] = {
    "timezone": "Asia/Shanghai",
    "weekly": {
        "mon": [["09:00", "18:00"]],
        "tue": [["09:00", "12:00"], ["13:00", "18:00"]],
        "sat": [["10:00", "24:00"]],
        "sun": [["00:00", "24:00"]],
    },
    "holidays": ["2026-01-01", "2026-10-01"],
}


def test_parse_reads_the_spec() -> None:
    hours = BusinessHours.parse(SPEC)
    assert hours.timezone == SHANGHAI
    assert hours.weekly[0] == ((time(9), time(18)),)
    assert hours.weekly[1] == ((time(9), time(12)), (time(13), time(18)))
    assert hours.weekly[2] == ()
    assert hours.weekly[5] == ((time(10), MIDNIGHT),)
    assert hours.weekly[6] == ((time(0), MIDNIGHT),)
    assert hours.holidays == frozenset({date(2026, 1, 1), date(2026, 10, 1)})


def test_to_spec_round_trips() -> None:
    hours = BusinessHours.parse(SPEC)
    assert hours.to_spec() == SPEC
    assert BusinessHours.parse(hours.to_spec()) == hours


def test_to_spec_sorts_and_deduplicates_holidays() -> None:
    spec = {**SPEC, "holidays": ["2026-10-01", "2026-01-01", "2026-10-01"]}
    assert BusinessHours.parse(spec).to_spec()["holidays"] == ["2026-01-01", "2026-10-01"]
    without = {key: value for key, value in SPEC.items() if key != "holidays"}
    assert BusinessHours.parse(without).to_spec()["holidays"] == []


def _with(**changes: Any) -> dict[str, Any]:
    return {**SPEC, **changes}


def _day(intervals: Any) -> dict[str, Any]:
    return _with(weekly={"tue": intervals})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_with(timezone="Mars/Base"), "timezone: unknown zone 'Mars/Base'"),
        (_with(timezone="Asia"), "timezone: unknown zone 'Asia'"),
        (_with(timezone="../etc/passwd"), "timezone: unknown zone '../etc/passwd'"),
        (_with(timezone=8), "timezone: expected an IANA zone name, got 8"),
        ({"weekly": SPEC["weekly"]}, "timezone: required"),
        (_with(weekly=None), "weekly: required"),
        (_with(weekly=[["09:00", "18:00"]]), "weekly: expected an object keyed by mon"),
        (_with(weekly={"funday": []}), "weekly.funday: unknown weekday"),
        (_with(weekly={"Mon": []}), "weekly.Mon: unknown weekday"),
        (_day("09:00-18:00"), "weekly.tue: expected a list of [start, end] pairs"),
        (_day([["09:00"]]), "weekly.tue[0]: expected [start, end]"),
        (_day([["9am", "18:00"]]), "weekly.tue[0][0]: '9am' is not a time of day HH:MM"),
        (_day([["09:00", "25:00"]]), "weekly.tue[0][1]: '25:00' is not a time of day HH:MM"),
        (_day([["09:60", "18:00"]]), "weekly.tue[0][0]: '09:60' is not a time of day HH:MM"),
        (_day([["9:00", "18:00"]]), "weekly.tue[0][0]: '9:00' is not a time of day HH:MM"),
        (_day([[900, "18:00"]]), "weekly.tue[0][0]: 900 is not a time of day HH:MM"),
        (_day([["24:00", "24:00"]]), "weekly.tue[0][0]: 24:00 can only end an interval"),
        (_day([["09:00", "00:00"]]), "weekly.tue[0]: start 09:00 is not before end 00:00"),
        (
            _day([["09:00", "12:00"], ["13:00", "12:00"]]),
            "weekly.tue[1]: start 13:00 is not before end 12:00",
        ),
        (_day([["09:00", "09:00"]]), "weekly.tue[0]: start 09:00 is not before end 09:00"),
        (
            _day([["09:00", "12:00"], ["11:00", "13:00"]]),
            "weekly.tue[1]: 11:00-13:00 starts before the previous interval 09:00-12:00 ends",
        ),
        (
            _day([["13:00", "18:00"], ["09:00", "12:00"]]),
            "weekly.tue[1]: 09:00-12:00 starts before the previous interval 13:00-18:00 ends",
        ),
        (
            _day([["20:00", "24:00"], ["21:00", "22:00"]]),
            "weekly.tue[1]: 21:00-22:00 starts before the previous interval 20:00-24:00 ends",
        ),
        (_with(weekly={}), "weekly: no opening hours on any day"),
        (_with(weekly={"sat": [], "sun": []}), "weekly: no opening hours on any day"),
        (_with(holidays="2026-10-01"), "holidays: expected a list of dates YYYY-MM-DD"),
        (
            _with(holidays=["2026-10-01", "2026-13-01"]),
            "holidays[1]: '2026-13-01' is not a date YYYY-MM-DD",
        ),
        (_with(holidays=["20261001"]), "holidays[0]: '20261001' is not a date YYYY-MM-DD"),
        (_with(holidays=[20261001]), "holidays[0]: 20261001 is not a date YYYY-MM-DD"),
        (_with(colour="blue"), "colour: unknown field"),
    ],
)
def test_parse_errors_name_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(CalendarError) as raised:
        BusinessHours.parse(spec)
    assert str(raised.value).startswith(message)
    assert isinstance(raised.value, ValueError)


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(CalendarError, match="weekly: expected 7 days"):
        BusinessHours(SHANGHAI, (((time(9), time(18)),),) * 5)
    with pytest.raises(CalendarError, match=r"weekly.mon\[0\]: .* is not a plain whole minute"):
        BusinessHours(SHANGHAI, (((time(9, 0, 30), time(18)),),) + ((),) * 6)
    with pytest.raises(CalendarError, match="holidays: .* is not a date"):
        BusinessHours(SHANGHAI, (((time(9), time(18)),),) * 7, frozenset({datetime(2026, 1, 1)}))


# Properties over generated schedules, pauses and durations.

ZONES = [ZoneInfo(key) for key in ("UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York")]
ZONES += [ZoneInfo(key) for key in ("Australia/Lord_Howe", "America/Santiago", "Asia/Kathmandu")]
FIXED_ZONES = [ZoneInfo("UTC"), SHANGHAI, ZoneInfo("Asia/Kathmandu")]


def _half_hour(step: int) -> time:
    return MIDNIGHT if step == 48 else time(step // 2, step % 2 * 30)


@st.composite
def _day_intervals(draw: st.DrawFn) -> tuple[tuple[time, time], ...]:
    steps = sorted(draw(st.lists(st.integers(0, 48), unique=True, max_size=6)))
    pairs = zip(steps[::2], steps[1::2], strict=False)
    return tuple((_half_hour(opens), _half_hour(closes)) for opens, closes in pairs)


@st.composite
def business_hours(draw: st.DrawFn, zones: list[ZoneInfo] = ZONES) -> BusinessHours:
    weekly = tuple(draw(_day_intervals()) for _ in WEEKDAYS)
    if not any(weekly):
        weekly = ((time(9), time(18)),), *weekly[1:]
    holidays = draw(st.frozensets(st.dates(date(2025, 12, 1), date(2027, 3, 1)), max_size=40))
    return BusinessHours(draw(st.sampled_from(zones)), weekly, holidays)


instants = st.datetimes(
    datetime(2026, 1, 1), datetime(2026, 12, 31), timezones=st.sampled_from(ZONES)
)
durations = st.timedeltas(timedelta(0), timedelta(hours=150))
maybe_hours = st.one_of(st.none(), business_hours())


@st.composite
def pauses_near(draw: st.DrawFn, start: datetime) -> list[tuple[datetime, datetime]]:
    spans = draw(
        st.lists(
            st.tuples(
                st.timedeltas(timedelta(days=-3), timedelta(days=30)),
                st.timedeltas(timedelta(0), timedelta(days=4)),
            ),
            max_size=6,
        )
    )
    origin = start.astimezone(UTC)
    return [(origin + offset, origin + offset + length) for offset, length in spans]


@given(st.data(), instants, durations, maybe_hours)
@settings(max_examples=200, deadline=None)
def test_the_working_time_up_to_a_deadline_is_its_duration(
    data: st.DataObject, start: datetime, duration: timedelta, hours: BusinessHours | None
) -> None:
    pauses = data.draw(pauses_near(start))
    due = add_working_time(start, duration, hours, pauses)
    assert due >= start
    assert working_time_between(start, due, hours, pauses) == duration
    if duration:  # the earliest such instant: the last microsecond before it still counted
        tick = timedelta(microseconds=1)
        assert working_time_between(start, due - tick, hours, pauses) == duration - tick


@given(st.data(), instants, durations, durations, maybe_hours)
@settings(max_examples=200, deadline=None)
def test_deadlines_grow_with_duration_and_add_up(
    data: st.DataObject,
    start: datetime,
    first: timedelta,
    second: timedelta,
    hours: BusinessHours | None,
) -> None:
    pauses = data.draw(pauses_near(start))
    midway = add_working_time(start, first, hours, pauses)
    due = add_working_time(start, first + second, hours, pauses)
    assert start <= midway <= due
    assert add_working_time(midway, second, hours, pauses) == due


@given(st.data(), instants, durations, durations, maybe_hours)
@settings(max_examples=200, deadline=None)
def test_working_time_adds_up_over_consecutive_spans(
    data: st.DataObject,
    start: datetime,
    first: timedelta,
    second: timedelta,
    hours: BusinessHours | None,
) -> None:
    pauses = data.draw(pauses_near(start))
    middle = start.astimezone(UTC) + first
    end = middle + second
    whole = working_time_between(start, end, hours, pauses)
    assert whole == working_time_between(start, middle, hours, pauses) + working_time_between(
        middle, end, hours, pauses
    )
    assert timedelta(0) <= whole <= end - start


@given(
    business_hours(FIXED_ZONES),
    st.integers(0, 4 * 24 * 365),
    st.integers(0, 4 * 24 * 10),
    st.lists(st.tuples(st.integers(-4 * 24, 4 * 24 * 10), st.integers(0, 4 * 24 * 3)), max_size=5),
)
@settings(max_examples=150, deadline=None)
def test_working_time_matches_counting_quarter_hours(
    hours: BusinessHours, offset: int, length: int, pause_steps: list[tuple[int, int]]
) -> None:
    """In zones without clock changes, count open, unpaused quarter hours one by one."""
    quarter = timedelta(minutes=15)
    start = datetime(2026, 1, 1, tzinfo=hours.timezone).astimezone(UTC) + offset * quarter
    pauses = [(start + at * quarter, start + (at + span) * quarter) for at, span in pause_steps]

    def counts(moment: datetime) -> bool:
        local = moment.astimezone(hours.timezone)
        if local.date() in hours.holidays or any(a <= moment < b for a, b in pauses):
            return False
        now = local.time()
        return any(
            opens <= now and (closes == MIDNIGHT or now < closes)
            for opens, closes in hours.weekly[local.weekday()]
        )

    expected = sum(counts(start + step * quarter) for step in range(length)) * quarter
    assert working_time_between(start, start + length * quarter, hours, pauses) == expected

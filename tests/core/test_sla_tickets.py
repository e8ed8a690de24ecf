"""A ticket's SLA clock: hand-computed due times per priority, over business hours and pauses,
the pause state machine, and properties of recomputing."""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.models.enums import TicketPriority, TicketStatus
from services.core.sla.calendar import BusinessHours, working_time_between
from services.core.sla.tickets import (
    Clock,
    DueTimes,
    SlaTerms,
    Target,
    due_times,
    late,
    move_clock,
    pause_ended,
    pauses_from_json,
    pauses_to_json,
    still_warned,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
TARGETS: dict[str, dict[str, int]] = {
    "urgent": {"first_response_minutes": 60, "resolution_minutes": 240},
    "high": {"first_response_minutes": 240, "resolution_minutes": 1440},
    "normal": {"first_response_minutes": 480, "resolution_minutes": 2880},
    "low": {"first_response_minutes": 1440, "resolution_minutes": 5760},
}
OFFICE: dict[str, Any] = {
    "timezone": "Asia/Shanghai",
    "weekly": {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
}


def terms(business_hours: dict[str, Any] | None = None, ratio: float = 0.8) -> SlaTerms:
    return SlaTerms.from_stored(TARGETS, business_hours, ["pending"], ratio)


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    """A March 2026 instant in UTC: the 2nd is a Monday, the 6th a Friday."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def sh(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=SHANGHAI)


# Targets per priority, around the clock.


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        # first response, resolution, and 80% of each
        (TicketPriority.urgent, (utc(2, 11), utc(2, 14), utc(2, 10, 48), utc(2, 13, 12))),
        (TicketPriority.high, (utc(2, 14), utc(3, 10), utc(2, 13, 12), utc(3, 5, 12))),
        (TicketPriority.normal, (utc(2, 18), utc(4, 10), utc(2, 16, 24), utc(4, 0, 24))),
        (TicketPriority.low, (utc(3, 10), utc(6, 10), utc(3, 5, 12), utc(5, 14, 48))),
    ],
)
def test_each_priority_has_its_own_targets(
    priority: TicketPriority, expected: tuple[datetime, ...]
) -> None:
    assert due_times(utc(2, 10), priority, terms()) == DueTimes(*expected)


def test_due_soon_follows_the_ratio() -> None:
    due = due_times(utc(2, 10), TicketPriority.urgent, terms(ratio=0.5))
    assert (due.first_response_due_soon_at, due.resolution_due_soon_at) == (
        utc(2, 10, 30),
        utc(2, 12),
    )


# Business hours: 09:00-18:00 Monday to Friday in Shanghai (UTC+8).


def test_friday_evening_ticket_runs_over_the_weekend_closed() -> None:
    # Opened Friday 17:00: one working hour on Friday, the rest from Monday 09:00.
    due = due_times(sh(6, 17), TicketPriority.high, terms(OFFICE))
    assert due.first_response_due_at == sh(9, 12)  # 1 h Friday + 3 h Monday
    assert due.first_response_due_soon_at == sh(9, 11, 12)  # 3 h 12 min
    assert due.resolution_due_at == sh(11, 14)  # 1 + 9 + 9 + 5 hours
    assert due.resolution_due_soon_at == sh(11, 9, 12)  # 19 h 12 min: 1 + 9 + 9 + 0.2
    assert due.first_response_due_at.tzinfo is UTC


def test_a_holiday_monday_moves_everything_a_working_day_later() -> None:
    due = due_times(sh(6, 17), TicketPriority.high, terms({**OFFICE, "holidays": ["2026-03-09"]}))
    assert due.first_response_due_at == sh(10, 12)
    assert due.resolution_due_at == sh(12, 14)


def test_a_ticket_opened_at_night_starts_at_opening_time() -> None:
    due = due_times(sh(3, 2), TicketPriority.urgent, terms(OFFICE))
    assert (due.first_response_due_at, due.resolution_due_at) == (sh(3, 10), sh(3, 13))


# Pauses.


def test_a_pause_before_the_due_time_moves_it_by_its_length() -> None:
    pauses = [(utc(2, 2), utc(2, 5))]
    due = due_times(utc(2, 0), TicketPriority.normal, terms(), pauses)
    assert due.first_response_due_at == utc(2, 11)  # 8 h + 3 h paused
    assert due.resolution_due_at == utc(4, 3)  # 48 h + 3 h paused
    assert due.first_response_due_soon_at == utc(2, 9, 24)  # 6 h 24 min + 3 h


def test_a_pause_after_a_due_time_leaves_it() -> None:
    pauses = [(utc(2, 9), utc(2, 12))]
    due = due_times(utc(2, 0), TicketPriority.normal, terms(), pauses)
    assert due.first_response_due_at == utc(2, 8)
    assert due.resolution_due_at == utc(4, 3)


def test_pauses_outside_business_hours_cost_nothing() -> None:
    # Paused over the weekend, when the office is closed anyway.
    pauses = [(sh(6, 18), sh(9, 9))]
    assert due_times(sh(6, 17), TicketPriority.high, terms(OFFICE), pauses) == due_times(
        sh(6, 17), TicketPriority.high, terms(OFFICE)
    )


def test_pauses_in_business_hours_count_only_their_working_part() -> None:
    # Paused Monday 16:00 to Tuesday 10:00: 2 h on Monday and 1 h on Tuesday are lost.
    pauses = [(sh(9, 16), sh(10, 10))]
    due = due_times(sh(9, 9), TicketPriority.high, terms(OFFICE), pauses)
    assert due.first_response_due_at == sh(9, 13)  # before the pause
    assert due.resolution_due_at == sh(11, 18)  # 7 h Monday, 8 h Tuesday, 9 h Wednesday


# A priority change recomputes from creation, not from the time of the change.


def test_a_priority_change_times_from_creation() -> None:
    created = utc(2, 10)
    normal = due_times(created, TicketPriority.normal, terms())
    urgent = due_times(created, TicketPriority.urgent, terms())
    assert (normal.first_response_due_at, urgent.first_response_due_at) == (utc(2, 18), utc(2, 11))
    assert urgent.resolution_due_at < normal.resolution_due_at


# The clock's state machine.

PENDING_PAUSES = terms()


def test_entering_a_pause_status_stops_the_clock() -> None:
    clock = move_clock(Clock(), TicketStatus.pending, PENDING_PAUSES, utc(2, 12))
    assert clock == Clock(utc(2, 12), ())
    assert not pause_ended(Clock(), clock)


def test_leaving_it_closes_the_pause() -> None:
    paused = Clock(utc(2, 12), ((utc(1, 1), utc(1, 2)),))
    resumed = move_clock(paused, TicketStatus.open, PENDING_PAUSES, utc(2, 15))
    assert resumed == Clock(None, ((utc(1, 1), utc(1, 2)), (utc(2, 12), utc(2, 15))))
    assert pause_ended(paused, resumed)


def test_resolving_a_paused_ticket_closes_the_pause_unless_resolved_pauses_too() -> None:
    paused = Clock(utc(2, 12))
    resolved = move_clock(paused, TicketStatus.resolved, PENDING_PAUSES, utc(2, 13))
    assert resolved == Clock(None, ((utc(2, 12), utc(2, 13)),))
    both = SlaTerms.from_stored(TARGETS, None, ["pending", "resolved"], 0.8)
    assert move_clock(paused, TicketStatus.resolved, both, utc(2, 13)) == paused


def test_moves_within_running_or_paused_states_change_nothing() -> None:
    running, paused = Clock(), Clock(utc(2, 12))
    assert move_clock(running, TicketStatus.open, PENDING_PAUSES, utc(2, 13)) == running
    assert move_clock(paused, TicketStatus.pending, PENDING_PAUSES, utc(2, 13)) == paused


def test_without_a_policy_nothing_pauses_and_an_open_pause_closes() -> None:
    assert move_clock(Clock(), TicketStatus.pending, None, utc(2, 12)) == Clock()
    closed = move_clock(Clock(utc(2, 12)), TicketStatus.pending, None, utc(2, 14))
    assert closed == Clock(None, ((utc(2, 12), utc(2, 14)),))


def test_a_pause_never_ends_before_it_starts() -> None:
    clock = move_clock(Clock(utc(2, 12)), TicketStatus.open, PENDING_PAUSES, utc(2, 11))
    assert clock.pauses == ((utc(2, 12), utc(2, 12)),)


def test_pauses_round_trip_through_json() -> None:
    pauses = ((utc(2, 12), utc(2, 15)), (sh(3, 9), sh(3, 10)))
    stored = pauses_to_json(pauses)
    assert stored[0] == ["2026-03-02T12:00:00+00:00", "2026-03-02T15:00:00+00:00"]
    assert pauses_from_json(stored) == pauses


# Breaches and warnings.


def test_late_means_strictly_after_the_due_time() -> None:
    due = utc(2, 11)
    assert late(utc(2, 11, 1), due)
    assert not late(due, due)
    assert not late(utc(2, 10), due)
    assert not late(None, due)
    assert not late(utc(2, 12), None)


def test_a_warning_stands_only_while_its_mark_has_passed() -> None:
    now = utc(2, 12)
    assert still_warned(True, utc(2, 11), now)
    assert not still_warned(True, utc(2, 13), now)
    assert not still_warned(False, utc(2, 11), now)
    assert not still_warned(True, None, now)


# Reading a policy.


def test_terms_read_a_policy() -> None:
    read = SlaTerms.from_stored(TARGETS, OFFICE, ["pending", "resolved"], 0.75)
    assert read.targets[TicketPriority.high] == Target(timedelta(hours=4), timedelta(hours=24))
    assert read.business_hours == BusinessHours.parse(OFFICE)
    assert read.pause_statuses == {TicketStatus.pending, TicketStatus.resolved}
    assert read.due_soon_ratio == 0.75


def test_terms_need_every_priority_and_a_ratio_inside_0_1() -> None:
    with pytest.raises(ValueError, match="targets: no target for urgent"):
        SlaTerms.from_stored({k: v for k, v in TARGETS.items() if k != "urgent"}, None, [], 0.8)
    with pytest.raises(ValueError, match="due_soon_ratio"):
        terms(ratio=1.0)


# Properties.

instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
priorities = st.sampled_from(list(TicketPriority))
hours = st.sampled_from([None, OFFICE, {**OFFICE, "timezone": "Europe/Berlin"}])


@st.composite
def pause_lists(draw: st.DrawFn, start: datetime) -> list[tuple[datetime, datetime]]:
    pauses = []
    for _ in range(draw(st.integers(0, 3))):
        begins = start + timedelta(minutes=draw(st.integers(-600, 20_000)))
        pauses.append((begins, begins + timedelta(minutes=draw(st.integers(0, 5_000)))))
    return pauses


@given(st.data(), instants, priorities, hours)
@settings(max_examples=150, deadline=None)
def test_each_due_time_leaves_exactly_its_target_of_unpaused_working_time(
    data: st.DataObject,
    created: datetime,
    priority: TicketPriority,
    business_hours: dict[str, Any] | None,
) -> None:
    sla = terms(business_hours)
    pauses = data.draw(pause_lists(created))
    due = due_times(created, priority, sla, pauses)
    target = sla.targets[priority]

    def between(end: datetime) -> timedelta:
        return working_time_between(created, end, sla.business_hours, pauses)

    assert between(due.first_response_due_at) == target.first_response
    assert between(due.resolution_due_at) == target.resolution
    assert between(due.first_response_due_soon_at) == target.first_response * 0.8
    assert due.first_response_due_soon_at <= due.first_response_due_at <= due.resolution_due_at
    assert due.resolution_due_soon_at <= due.resolution_due_at


@given(st.data(), instants, priorities, hours)
@settings(max_examples=150, deadline=None)
def test_another_pause_never_brings_a_due_time_forward(
    data: st.DataObject,
    created: datetime,
    priority: TicketPriority,
    business_hours: dict[str, Any] | None,
) -> None:
    sla = terms(business_hours)
    pauses = data.draw(pause_lists(created))
    extra = data.draw(pause_lists(created))
    fewer = due_times(created, priority, sla, pauses)
    more = due_times(created, priority, sla, pauses + extra)
    assert more.first_response_due_at >= fewer.first_response_due_at
    assert more.resolution_due_at >= fewer.resolution_due_at

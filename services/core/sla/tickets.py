"""A ticket's SLA clock under its policy: due times, due-soon marks, pauses and breaches.

Pure functions over plain values (no I/O), so the API computes due times in the write that
changes a ticket and the same rules can be tested alone. Due times are always computed from the
ticket's creation over every finished pause, never shifted incrementally: recomputing after a
priority change or a pause gives the same answer however often it is done.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.core.models.enums import TicketPriority, TicketStatus
from services.core.sla.calendar import BusinessHours, add_working_time

Pause = tuple[datetime, datetime]
"""A finished pause: the clock stood still from the first instant to the second."""

DEFAULT_PAUSE_STATUSES = frozenset({TicketStatus.pending})
DEFAULT_DUE_SOON_RATIO = 0.8


@dataclass(frozen=True)
class Target:
    """How much working time a ticket of one priority has for each answer."""

    first_response: timedelta
    resolution: timedelta

    @classmethod
    def from_minutes(cls, first_response: int, resolution: int) -> "Target":
        return cls(timedelta(minutes=first_response), timedelta(minutes=resolution))


@dataclass(frozen=True)
class SlaTerms:
    """What an SLA policy promises, read from its stored form once per write."""

    targets: Mapping[TicketPriority, Target]
    business_hours: BusinessHours | None = None
    pause_statuses: frozenset[TicketStatus] = DEFAULT_PAUSE_STATUSES
    due_soon_ratio: float = DEFAULT_DUE_SOON_RATIO

    def __post_init__(self) -> None:
        missing = [p.value for p in TicketPriority if p not in self.targets]
        if missing:
            raise ValueError(f"targets: no target for {', '.join(missing)}")
        if not 0 < self.due_soon_ratio < 1:
            raise ValueError(f"due_soon_ratio: {self.due_soon_ratio} is not between 0 and 1")

    @classmethod
    def from_stored(
        cls,
        targets: Mapping[str, Mapping[str, int]],
        business_hours: Mapping[str, Any] | None,
        pause_statuses: Iterable[str],
        due_soon_ratio: float,
    ) -> "SlaTerms":
        """From a policy's columns: `targets` keyed by priority, each with
        `first_response_minutes` and `resolution_minutes`; `business_hours` as a spec."""
        return cls(
            targets={
                TicketPriority(priority): Target.from_minutes(
                    target["first_response_minutes"], target["resolution_minutes"]
                )
                for priority, target in targets.items()
            },
            business_hours=None if business_hours is None else BusinessHours.parse(business_hours),
            pause_statuses=frozenset(TicketStatus(s) for s in pause_statuses),
            due_soon_ratio=due_soon_ratio,
        )


@dataclass(frozen=True)
class DueTimes:
    first_response_due_at: datetime
    resolution_due_at: datetime
    first_response_due_soon_at: datetime
    resolution_due_soon_at: datetime


def due_times(
    created_at: datetime,
    priority: TicketPriority,
    terms: SlaTerms,
    pauses: Sequence[Pause] = (),
) -> DueTimes:
    """When each target falls due, and when the due-soon share of it has elapsed: working time
    (business hours, if any) counted from creation, the paused spans left out."""
    target = terms.targets[priority]
    hours = terms.business_hours

    def after(duration: timedelta) -> datetime:
        return add_working_time(created_at, duration, hours, pauses)

    return DueTimes(
        first_response_due_at=after(target.first_response),
        resolution_due_at=after(target.resolution),
        first_response_due_soon_at=after(target.first_response * terms.due_soon_ratio),
        resolution_due_soon_at=after(target.resolution * terms.due_soon_ratio),
    )


@dataclass(frozen=True)
class Clock:
    """Whether the ticket's clock is stopped now, and the pauses already over."""

    paused_since: datetime | None = None
    pauses: tuple[Pause, ...] = ()


def move_clock(clock: Clock, status: TicketStatus, terms: SlaTerms | None, at: datetime) -> Clock:
    """The clock once the ticket is in `status` at `at`: entering a pause status stops it,
    leaving one closes the pause. Without a policy nothing stops the clock; a pause left
    open by a former policy is closed."""
    paused = terms is not None and status in terms.pause_statuses
    if paused and clock.paused_since is None:
        return Clock(at, clock.pauses)
    if not paused and clock.paused_since is not None:
        return Clock(None, (*clock.pauses, (clock.paused_since, max(at, clock.paused_since))))
    return clock


def pause_ended(before: Clock, after: Clock) -> bool:
    """Whether the move closed a pause, so the due times have to move."""
    return len(after.pauses) > len(before.pauses)


def late(answered_at: datetime | None, due_at: datetime | None) -> bool:
    """Whether an answer given at `answered_at` missed a due time (no due time: never)."""
    return answered_at is not None and due_at is not None and answered_at > due_at


def still_warned(warned: bool, due_soon_at: datetime | None, now: datetime) -> bool:
    """A due-soon warning stands only while its mark is behind us: when recomputing moves
    the mark into the future, the ticket can be warned again when it gets there."""
    return warned and due_soon_at is not None and due_soon_at <= now


def pauses_from_json(value: Sequence[Sequence[str]]) -> tuple[Pause, ...]:
    """Stored pauses (`[[start, end], ...]` ISO 8601 strings) as pairs of instants."""
    return tuple(
        (datetime.fromisoformat(start), datetime.fromisoformat(end)) for start, end in value
    )


def pauses_to_json(pauses: Sequence[Pause]) -> list[list[str]]:
    return [[start.isoformat(), end.isoformat()] for start, end in pauses]

"""Working-time arithmetic for SLA deadlines: business hours, holidays and paused spans.

A deadline is the instant at which a target of *working* time has elapsed: time outside the
business hours (or on a holiday) and time while the ticket is paused do not count. Business hours
of None mean the clock runs around the clock.

Instants are handled in UTC; opening hours are wall-clock times in the schedule's zone, so a
09:00-18:00 day opens at 09:00 local whatever the UTC offset is that day. Across a DST change a
wall-clock time can be skipped or repeated. A skipped time resolves to the instant of the jump (the
first instant that exists after it) and a repeated time to its first occurrence (zoneinfo's
fold=0). zoneinfo's fold rules alone would map a skipped 02:30 to an instant after 03:00 and so run
an interval backwards; with these two rules wall-clock order is instant order, so a 00:00-24:00 day
holds 23 hours in spring, 25 in autumn, and a 02:30-04:00 interval on the spring day opens at 03:00.

Days are walked one at a time (a few microseconds each), never minute by minute.
"""

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIDNIGHT = time(0)
"""As the end of an interval, the midnight that closes the day (written "24:00" in a spec)."""
SEARCH_DAYS = 3653
"""Days (ten years) walked without finding working time before giving up."""

Interval = tuple[time, time]
Span = tuple[datetime, datetime | None]
"""Naive UTC instants [start, end); an end of None runs on forever."""

_ONE_DAY = timedelta(days=1)
_ONE_MICROSECOND = timedelta(microseconds=1)
_CLOCK = re.compile(r"(\d{2}):(\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FIELDS = ("timezone", "weekly", "holidays")


class CalendarError(ValueError):
    """Business hours that cannot be used, or a deadline they cannot reach; names the field."""


@dataclass(frozen=True)
class BusinessHours:
    """When the SLA clock runs: local opening intervals per weekday, minus holidays.

    `weekly` has seven entries, Monday first; each is a tuple of (start, end) wall-clock times in
    whole minutes, in order and not overlapping (they may touch). An end of MIDNIGHT means the end
    of the day. A holiday closes its whole local date.
    """

    timezone: ZoneInfo
    weekly: tuple[tuple[Interval, ...], ...]
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if self.timezone.key is None:
            raise CalendarError("timezone: the zone has no IANA name")
        if len(self.weekly) != len(WEEKDAYS):
            raise CalendarError(f"weekly: expected 7 days, Monday first, got {len(self.weekly)}")
        for day, intervals in zip(WEEKDAYS, self.weekly, strict=True):
            _check_day(day, intervals)
        if not any(self.weekly):
            raise CalendarError("weekly: no opening hours on any day")
        for holiday in self.holidays:
            if isinstance(holiday, datetime) or not isinstance(holiday, date):
                raise CalendarError(f"holidays: {holiday!r} is not a date")

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> "BusinessHours":
        """Read `{"timezone": ..., "weekly": {"mon": [["09:00", "18:00"]], ...}, "holidays": [...]}`.

        Weekdays left out are closed; "24:00" ends an interval at midnight; holidays are optional.
        """
        if not isinstance(spec, Mapping):
            raise CalendarError("business hours: expected an object with timezone and weekly")
        unknown = sorted(str(key) for key in spec if key not in _FIELDS)
        if unknown:
            raise CalendarError(
                f"{unknown[0]}: unknown field (expected timezone, weekly, holidays)"
            )
        return cls(
            timezone=_parse_zone(spec.get("timezone")),
            weekly=_parse_weekly(spec.get("weekly")),
            holidays=_parse_holidays(spec.get("holidays", [])),
        )

    def to_spec(self) -> dict[str, Any]:
        """The JSON shape `parse` reads; closed weekdays are left out, holidays sorted."""
        return {
            "timezone": self.timezone.key,
            "weekly": {
                day: [[_format(start), _format(end, closing=True)] for start, end in intervals]
                for day, intervals in zip(WEEKDAYS, self.weekly, strict=True)
                if intervals
            },
            "holidays": [holiday.isoformat() for holiday in sorted(self.holidays)],
        }


def add_working_time(
    start: datetime,
    duration: timedelta,
    hours: BusinessHours | None,
    pauses: Sequence[tuple[datetime, datetime]] = (),
) -> datetime:
    """The earliest instant t >= start at which `duration` of working, unpaused time lies in [start, t].

    A zero duration gives `start` itself, even outside business hours or inside a pause: nothing
    has to elapse. A positive duration always ends inside working time. Pauses are (start, end)
    pairs in any order; they may overlap and may begin before `start`. The result is in UTC.
    The due-soon mark at a fraction of a target is `add_working_time(start, target * fraction, ...)`.
    """
    origin = _utc(start, "start")
    if duration < timedelta(0):
        raise ValueError(f"duration: {duration} is negative")
    if not duration:
        return origin.replace(tzinfo=UTC)
    remaining = duration
    try:
        for opened, closed in _working_spans(origin, hours, pauses):
            if closed is None or closed - opened >= remaining:
                return (opened + remaining).replace(tzinfo=UTC)
            remaining -= closed - opened
    except OverflowError as error:
        raise CalendarError(f"duration: {duration} reaches past the year 9999") from error
    raise AssertionError("working spans without an end bound never run out")


def working_time_between(
    start: datetime,
    end: datetime,
    hours: BusinessHours | None,
    pauses: Sequence[tuple[datetime, datetime]] = (),
) -> timedelta:
    """Working, unpaused time in [start, end]; zero when end is not after start."""
    origin, until = _utc(start, "start"), _utc(end, "end")
    if until <= origin:
        return timedelta(0)
    total = timedelta(0)
    try:
        for opened, closed in _working_spans(origin, hours, pauses, until):
            if opened >= until:
                break
            total += (until if closed is None else min(closed, until)) - opened
    except OverflowError as error:
        raise CalendarError(f"end: {end.isoformat()} lies past the year 9999") from error
    return total


def _working_spans(
    start: datetime,
    hours: BusinessHours | None,
    pauses: Sequence[tuple[datetime, datetime]],
    until: datetime | None = None,
) -> Iterator[Span]:
    """Open, unpaused spans from `start` on, in order; with `until`, they stop soon after it."""
    paused = _merge_pauses(pauses, start)
    next_pause = 0
    spans = _open_spans(hours, start, until)
    while (span := next(spans, None)) is not None:
        opened, closed = span
        while closed is None or opened < closed:
            while next_pause < len(paused) and paused[next_pause][1] <= opened:
                next_pause += 1
            if next_pause == len(paused):
                yield opened, closed
                break
            pause_start, pause_end = paused[next_pause]
            if pause_start > opened:
                cut = pause_start if closed is None else min(closed, pause_start)
                yield opened, cut
                opened = cut
            elif closed is not None and pause_end >= closed:
                # The pause outlasts this span: look for opening hours after it, however far.
                spans = _open_spans(hours, pause_end, until)
                break
            else:
                opened = pause_end


def _open_spans(
    hours: BusinessHours | None, start: datetime, until: datetime | None
) -> Iterator[Span]:
    """Business-hours spans ending after `start`, clipped to begin no earlier, in order.

    With `until`, the walk stops after its local date; without, it gives up (CalendarError) after
    SEARCH_DAYS days in a row without opening hours, e.g. when holidays cover the years ahead.
    """
    if hours is None:
        yield start, None
        return
    zone = hours.timezone
    day = _local_date(start, zone)
    last = None if until is None else _local_date(until, zone)
    closed_days = 0
    while last is None or day <= last:
        found = False
        if day not in hours.holidays:
            for opens, closes in hours.weekly[day.weekday()]:
                closed = (
                    _instant(day + _ONE_DAY, MIDNIGHT, zone)
                    if closes == MIDNIGHT
                    else _instant(day, closes, zone)
                )
                if closed <= start:
                    continue
                opened = max(_instant(day, opens, zone), start)
                if opened < closed:
                    found = True
                    yield opened, closed
        closed_days = 0 if found else closed_days + 1
        if last is None and closed_days > SEARCH_DAYS:
            first = day - timedelta(days=SEARCH_DAYS)
            raise CalendarError(f"holidays: no working time from {first} to {day}")
        day += _ONE_DAY


def _instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The naive UTC instant at which `zone`'s wall clock shows `clock` on `day`.

    A repeated wall time gives its first occurrence; a skipped one gives the instant of the jump,
    found by bisection between the two candidate offsets (rare: once a year per such interval).
    The two offsets come from the wall time with fold 0 and fold 1 (PEP 495): they differ only
    around a change, the fold-1 one being larger in a skipped hour.
    """
    wall = datetime.combine(day, clock)
    before, after = zone.utcoffset(wall), zone.utcoffset(datetime.combine(day, _folded(clock)))
    if before is None or after is None:
        raise ValueError(f"{zone.key} gives no UTC offset for {wall}")
    if after <= before:
        return wall - before
    earlier, later = wall - after, wall - before  # the jump lies in (earlier, later]
    while later - earlier > _ONE_MICROSECOND:
        middle = earlier + (later - earlier) // 2
        if middle.replace(tzinfo=UTC).astimezone(zone).utcoffset() == after:
            later = middle
        else:
            earlier = middle
    return later


@cache
def _folded(clock: time) -> time:
    return clock.replace(fold=1)


def _local_date(instant: datetime, zone: ZoneInfo) -> date:
    return instant.replace(tzinfo=UTC).astimezone(zone).date()


def _utc(moment: datetime, name: str) -> datetime:
    """`moment` as a naive UTC datetime; naive input is refused, not guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}: {moment.isoformat()} has no timezone")
    return moment.astimezone(UTC).replace(tzinfo=None)


def _merge_pauses(
    pauses: Sequence[tuple[datetime, datetime]], start: datetime
) -> list[tuple[datetime, datetime]]:
    """Pauses as sorted, disjoint naive UTC spans that end after `start`."""
    spans = []
    for index, (begins, ends) in enumerate(pauses):
        first, last = _utc(begins, f"pauses[{index}][0]"), _utc(ends, f"pauses[{index}][1]")
        if last < first:
            raise ValueError(f"pauses[{index}]: ends at {ends.isoformat()} before it starts")
        if last > start and last > first:
            spans.append((first, last))
    merged: list[tuple[datetime, datetime]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def _check_day(day: str, intervals: tuple[Interval, ...]) -> None:
    previous: Interval | None = None
    for index, (opens, closes) in enumerate(intervals):
        path = f"weekly.{day}[{index}]"
        for clock in (opens, closes):
            if clock.tzinfo is not None or clock.fold or clock.second or clock.microsecond:
                raise CalendarError(f"{path}: {clock!r} is not a plain whole minute of local time")
        if closes != MIDNIGHT and opens >= closes:
            raise CalendarError(
                f"{path}: start {_format(opens)} is not before end {_format(closes, closing=True)}"
            )
        if previous is not None and (previous[1] == MIDNIGHT or opens < previous[1]):
            raise CalendarError(
                f"{path}: {_format(opens)}-{_format(closes, closing=True)} starts before the previous "
                f"interval {_format(previous[0])}-{_format(previous[1], closing=True)} ends "
                "(intervals must be in order and must not overlap)"
            )
        previous = opens, closes


def _parse_zone(value: object) -> ZoneInfo:
    if value is None:
        raise CalendarError("timezone: required, an IANA zone name such as 'Asia/Shanghai'")
    if not isinstance(value, str):
        raise CalendarError(f"timezone: expected an IANA zone name, got {value!r}")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CalendarError(f"timezone: unknown zone {value!r}") from None


def _parse_weekly(value: object) -> tuple[tuple[Interval, ...], ...]:
    if value is None:
        raise CalendarError("weekly: required, opening intervals keyed by mon..sun")
    if not isinstance(value, Mapping):
        raise CalendarError(f"weekly: expected an object keyed by {', '.join(WEEKDAYS)}")
    for key in value:
        if key not in WEEKDAYS:
            raise CalendarError(f"weekly.{key}: unknown weekday (expected {', '.join(WEEKDAYS)})")
    return tuple(_parse_day(day, value.get(day, [])) for day in WEEKDAYS)


def _parse_day(day: str, value: object) -> tuple[Interval, ...]:
    if not isinstance(value, list | tuple):
        raise CalendarError(f"weekly.{day}: expected a list of [start, end] pairs")
    intervals = []
    for index, pair in enumerate(value):
        path = f"weekly.{day}[{index}]"
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise CalendarError(f"{path}: expected [start, end] as two 'HH:MM' strings")
        opens = _parse_clock(pair[0], f"{path}[0]", closing=False)
        if pair[1] == "00:00":
            raise CalendarError(
                f"{path}: start {pair[0]} is not before end 00:00 (write 24:00 for midnight)"
            )
        intervals.append((opens, _parse_clock(pair[1], f"{path}[1]", closing=True)))
    return tuple(intervals)


def _parse_clock(value: object, path: str, *, closing: bool) -> time:
    if value == "24:00":
        if not closing:
            raise CalendarError(f"{path}: 24:00 can only end an interval")
        return MIDNIGHT
    match = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise CalendarError(f"{path}: {value!r} is not a time of day HH:MM")
    return time(int(match[1]), int(match[2]))


def _parse_holidays(value: object) -> frozenset[date]:
    if not isinstance(value, list | tuple):
        raise CalendarError("holidays: expected a list of dates YYYY-MM-DD")
    holidays = set()
    for index, item in enumerate(value):
        if isinstance(item, str) and _DATE.fullmatch(item):
            try:
                holidays.add(date.fromisoformat(item))
                continue
            except ValueError:
                pass
        raise CalendarError(f"holidays[{index}]: {item!r} is not a date YYYY-MM-DD")
    return frozenset(holidays)


def _format(clock: time, *, closing: bool = False) -> str:
    return "24:00" if closing and clock == MIDNIGHT else clock.strftime("%H:%M")

"""Report periods: UTC weeks (from Monday), calendar months and quarters, as their first day."""

from datetime import date, timedelta
from typing import Literal

Granularity = Literal["week", "month", "quarter"]
ONE_DAY = timedelta(days=1)
_MONTHS = {"month": 1, "quarter": 3}


def start_of(unit: Granularity, day: date) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    month = day.month - (day.month - 1) % _MONTHS[unit]
    return date(day.year, month, 1)


def add(unit: Granularity, start: date, count: int) -> date:
    """The start of the period `count` periods after the one starting at `start`."""
    if unit == "week":
        return start + timedelta(weeks=count)
    months = start.year * 12 + start.month - 1 + count * _MONTHS[unit]
    return date(months // 12, months % 12 + 1, 1)


def starts(unit: Granularity, since: date, until: date) -> list[date]:
    """Every period that overlaps [since, until), oldest first."""
    found = []
    current = start_of(unit, since)
    while current < until:
        found.append(current)
        current = add(unit, current, 1)
    return found


def months_between(earlier: date, later: date) -> int:
    return (later.year - earlier.year) * 12 + later.month - earlier.month

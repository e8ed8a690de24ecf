"""Report filters as SQL conditions with bound values, on segments or on customers.

Segments (report_segments) and customers share the column names the filters use, so the same
conditions narrow pre-aggregated figures and the live queries over customers alike.
"""

from dataclasses import dataclass
from datetime import date
from typing import Any

from services.api.reports.schemas import ReportFilters
from services.core.errors import FieldError, InvalidInput
from services.core.reports import periods
from services.core.reports.periods import Granularity

MAX_PERIODS = 260


def conditions(filters: ReportFilters, alias: str) -> tuple[list[str], dict[str, Any]]:
    """Conditions on a row of segments or customers named `alias`."""
    found = []
    if filters.channel_id is not None:
        found.append(f"{alias}.channel_id = :f_channel_id")
    if filters.tier is not None:
        found.append(f"{alias}.value_tier = :f_tier")
    if filters.owner is not None:
        found.append(f"{alias}.owner = :f_owner")
    if filters.tag is not None:
        found.append(f":f_tag = ANY({alias}.tags)")
    if filters.region is not None:
        found.append(f"{alias}.channel_id IN (SELECT id FROM channels WHERE region = :f_region)")
    params = {f"f_{k}": v for k, v in filters.model_dump().items() if v is not None}
    return found, params


def segments(filters: ReportFilters) -> tuple[str, dict[str, Any]]:
    """A subquery of the ids of the segments the filters select."""
    found, params = conditions(filters, "s")
    where = f" WHERE {' AND '.join(found)}" if found else ""
    return f"SELECT s.id FROM report_segments s{where}", params


@dataclass(frozen=True)
class Window:
    unit: Granularity
    starts: list[date]
    """The periods reported, oldest first."""

    @property
    def since(self) -> date:
        return self.starts[0]

    @property
    def until(self) -> date:
        return periods.add(self.unit, self.starts[-1], 1)

    @property
    def before(self) -> date:
        """The start of the period before the first: each figure's `previous`."""
        return periods.add(self.unit, self.starts[0], -1)


EARLIEST_YEAR, LATEST_YEAR = 1900, 2999
"""The years a report may name: the periods around them, the ones before for `previous`, and a
default span back from `until` stay within the calendar's years 1 to 9999."""


def check_years(**days: date | None) -> None:
    """Refuse a report's `since` or `until` (dates or times) outside the years it can cover,
    naming the query parameter."""
    for name, day in days.items():
        if day is not None and not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
            raise InvalidInput(
                "The report's range is outside the years it can cover.",
                [
                    FieldError(
                        f"query.{name}",
                        f"not in the years {EARLIEST_YEAR} to {LATEST_YEAR}",
                        "value_error",
                    )
                ],
            )


def window(
    unit: Granularity, since: date | None, until: date | None, today: date, default: int = 12
) -> Window:
    """Periods overlapping [since, until); by default the `default` periods up to today's."""
    check_years(since=since, until=until)
    end = until or periods.add(unit, periods.start_of(unit, today), 1)
    start = since or periods.add(unit, periods.start_of(unit, end - periods.ONE_DAY), 1 - default)
    if start >= end:
        raise InvalidInput(
            "The report's range is empty.",
            [FieldError("query.until", "not after since", "value_error")],
        )
    starts = periods.starts(unit, start, end)
    if len(starts) > MAX_PERIODS:
        raise InvalidInput(
            "The report spans too many periods.",
            [
                FieldError(
                    "query.since", f"more than {MAX_PERIODS} {unit}s before until", "value_error"
                )
            ],
        )
    return Window(unit, starts)

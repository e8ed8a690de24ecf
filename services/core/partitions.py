"""Monthly partitions of interactions (see the migration 312c578ff8a3).

A row lands in the partition of its month (UTC) or, when that month has none yet, in
`interactions_default`, so no insert waits for a partition. The worker keeps months ahead of
time and moves what the default partition holds into partitions of its own; a bulk import
creates the months it is about to load, so years of history never pass through the default."""

import logging
import re
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import asyncpg

log = logging.getLogger(__name__)

MONTHS_AHEAD = 3
_PARTITION = re.compile(r"interactions_(\d{4}_\d{2}|default)")
_ENSURE = "SELECT ensure_interaction_partitions($1, $2)"
_SPLIT_DEFAULT = """
SELECT coalesce(sum(ensure_interaction_partitions(month, month)), 0)
FROM (SELECT DISTINCT date_trunc('month', occurred_at, 'UTC') AS month
      FROM interactions_default) months
"""
_AHEAD = "SELECT ensure_interaction_partitions(now(), now() + make_interval(months => $1))"


def is_partition(table: str) -> bool:
    """Partitions come and go with the data: the schema that migrations own is the parent's."""
    return _PARTITION.fullmatch(table) is not None


def month_of(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def months_of(moments: Collection[datetime]) -> set[datetime]:
    """The distinct `month_of` these times. When every time is in UTC, as in most bulk loads,
    they are grouped by their own year and month, an eighth of the cost of converting each:
    this runs over every row an import loads."""
    local = {(moment.year, moment.month, moment.tzinfo) for moment in moments}
    if all(zone is not None and zone.utcoffset(None) == timedelta(0) for _, _, zone in local):
        return {datetime(year, month, 1, tzinfo=UTC) for year, month, _ in local}
    return {month_of(moment) for moment in moments}


_MONTHS_WITH_PARTITIONS = """
SELECT to_date(substr(c.relname, 14), 'YYYY_MM')::timestamp AT TIME ZONE 'UTC' AS month
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'interactions'::regclass AND c.relname ~ '^interactions_[0-9]{4}_[0-9]{2}$'
"""


async def months_with_partitions(conn: asyncpg.Connection) -> set[datetime]:
    """The months (UTC) that have a partition of their own."""
    return {row["month"] for row in await conn.fetch(_MONTHS_WITH_PARTITIONS)}


async def ensure_range(conn: asyncpg.Connection, first: datetime, last: datetime) -> int:
    """Partitions for every month from `first` to `last`; the number created (a bulk load of a
    known span, which would otherwise fill the default partition)."""
    created: int = await conn.fetchval(_ENSURE, first, last)
    return created


async def ensure_months(
    conn: asyncpg.Connection, moments: Collection[datetime], lock_timeout: timedelta | None = None
) -> set[datetime]:
    """Create the partitions of the months of these times that have none, each in a
    transaction of its own; the months it saw to. Creating a partition waits for every open
    reader of the default partition, and every reader that comes later waits behind it: with
    `lock_timeout`, a month that would wait longer is given up, and its rows go to the default
    partition until a later call or the worker's maintenance moves them out."""
    done: set[datetime] = set()
    for month in sorted(months_of(moments)):
        if await _within_lock_wait(conn, lock_timeout, _ENSURE, month, month) is None:
            log.info("the partition of %s waits for readers; its rows go to the default", month)
        else:
            done.add(month)
    return done


async def maintain(
    conn: asyncpg.Connection,
    months_ahead: int = MONTHS_AHEAD,
    lock_timeout: timedelta | None = None,
) -> int:
    """Partitions for the coming months, and for every month with rows in the default one; the
    number created. With `lock_timeout`, a step that would wait longer for readers is left to
    the next run (see `ensure_months`)."""
    created = 0
    for statement, args in ((_AHEAD, (months_ahead,)), (_SPLIT_DEFAULT, ())):
        step = await _within_lock_wait(conn, lock_timeout, statement, *args)
        if step is None:
            log.warning("partition maintenance waits for long readers; the next run tries again")
        else:
            created += step
    return created


async def _within_lock_wait(
    conn: asyncpg.Connection, lock_timeout: timedelta | None, statement: str, *args: object
) -> int | None:
    """The statement's count, in a transaction of its own; None when a lock it needed was not
    granted within `lock_timeout`."""
    try:
        async with conn.transaction():
            if lock_timeout is not None:
                milliseconds = max(1, round(lock_timeout.total_seconds() * 1000))
                await conn.execute(f"SET LOCAL lock_timeout = {milliseconds}")
            count: int = await conn.fetchval(statement, *args)
            return count
    except asyncpg.LockNotAvailableError:
        return None

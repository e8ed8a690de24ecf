"""Partitions for back-dated interactions sent through the API, created before the batch is
written, so history backfilled by an integration lands in its month's partition. Otherwise it
waits in the default partition until the hourly maintenance moves it, under a lock that keeps
every reader of interactions out for as long as the move takes."""

import logging
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import asyncpg

from services.core import partitions

log = logging.getLogger(__name__)

LOCK_TIMEOUT = timedelta(milliseconds=100)
"""How long a request may wait to create a partition, holding up readers of the default one
meanwhile; a month it gives up is left to a later batch or the maintenance."""
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
MOST_PER_BATCH = 3
"""Client input decides which months get a partition, so it is bounded: only past months from
EARLIEST (the maintenance makes the coming ones), and a few a batch; a date that is a typo
costs a row in the default partition, not a partition of its own."""


class Months:
    """The months this process knows to have a partition, and the creation of missing ones."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._known: set[datetime] | None = None

    async def ensure(self, moments: Collection[datetime]) -> None:
        if self._known is None:
            async with self.pool.acquire() as conn:
                self._known = await partitions.months_with_partitions(conn)
        latest = partitions.month_of(datetime.now(UTC))
        missing = sorted(
            month
            for month in partitions.months_of(moments) - self._known
            if EARLIEST <= month <= latest
        )[:MOST_PER_BATCH]
        if not missing:
            return
        try:
            async with self.pool.acquire() as conn:
                self._known |= await partitions.ensure_months(conn, missing, LOCK_TIMEOUT)
        except (asyncpg.PostgresError, OSError) as exc:
            # The write goes on without them: its rows wait in the default partition.
            log.warning("could not create the partitions of %s: %s", missing, exc)

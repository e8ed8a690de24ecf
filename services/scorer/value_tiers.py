"""Value tiers A/B/C written after a full recompute: ranked over every scored customer at once
(services/core/scoring/tiers.py), so not per event or per chunk."""

import asyncio
import uuid
from collections.abc import Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.db import session_scope
from services.core.scoring import tiers

RFM = ("days_since_order", "orders_365d", "revenue_365d")

# All four aggregates read the same rows in the same order, so the arrays line up.
_STORED_INPUTS = text("""
SELECT array_agg(customer_id) AS ids,
  array_agg(coalesce(CAST(features->>'days_since_order' AS float8), 'NaN')) AS days_since_order,
  array_agg(coalesce(CAST(features->>'orders_365d' AS float8), 'NaN')) AS orders_365d,
  array_agg(coalesce(CAST(features->>'revenue_365d' AS float8), 'NaN')) AS revenue_365d
FROM customer_health
""")

_SET_TIERS = text("""
UPDATE customers c SET value_tier = t.tier, updated_at = now(), version = c.version + 1
FROM unnest(CAST(:ids AS uuid[]), CAST(:tiers AS text[])) AS t(id, tier)
WHERE c.id = t.id AND c.value_tier IS DISTINCT FROM t.tier
""")

WRITE_ROWS = 10_000
"""Customers per tier-writing statement: small enough that PostgreSQL finds each by its
primary key (a million at once would make it hash the whole table for every statement)."""


class TierInputs:
    """The RFM figures of scored customers, gathered chunk by chunk as a recompute scores them,
    so the tiers need not read a million stored scores back."""

    def __init__(self) -> None:
        self.ids: list[uuid.UUID] = []
        self._columns: dict[str, list[np.ndarray]] = {name: [] for name in RFM}

    def add(self, ids: Sequence[uuid.UUID], columns: dict[str, np.ndarray]) -> None:
        self.ids.extend(ids)
        for name in RFM:
            self._columns[name].append(columns[name])

    def column(self, name: str) -> np.ndarray:
        parts = self._columns[name]
        return np.concatenate(parts) if parts else np.empty(0)

    @classmethod
    async def stored(cls, session: AsyncSession) -> "TierInputs":
        """The figures of every customer's current score."""
        row = (await session.execute(_STORED_INPUTS)).one()
        inputs = cls()
        if row.ids is not None:
            inputs.add(
                row.ids, {name: np.array(getattr(row, name), dtype=np.float64) for name in RFM}
            )
        return inputs


def _in_id_order(ids: list[uuid.UUID]) -> np.ndarray:
    """Positions that sort the ids as PostgreSQL does (bytewise), so each slice below locks its
    rows in the order the live path does."""
    keys = np.fromiter((i.bytes for i in ids), dtype="S16", count=len(ids))
    return np.argsort(keys, kind="stable")


async def assign_value_tiers(
    sessionmaker: async_sessionmaker[AsyncSession], parallel: int, inputs: TierInputs
) -> int:
    """Tier every customer in `inputs` and store the tiers that changed; returns how many.
    After a first recompute nearly every customer changes tier: `parallel` connections write
    them, a transaction per slice of WRITE_ROWS customers."""
    if not inputs.ids:
        return 0
    order = _in_id_order(inputs.ids)
    ids = [inputs.ids[k] for k in order.tolist()]
    assigned = tiers.value_tiers(*(inputs.column(name)[order] for name in RFM)).tolist()
    slices = iter(range(0, len(ids), WRITE_ROWS))

    async def write() -> int:
        changed = 0
        for start in slices:
            end = start + WRITE_ROWS
            async with session_scope(sessionmaker) as session:
                params = {"ids": ids[start:end], "tiers": assigned[start:end]}
                result = await session.execute(_SET_TIERS, params)
            changed += int(getattr(result, "rowcount", 0) or 0)
        return changed

    return sum(await asyncio.gather(*(write() for _ in range(parallel))))

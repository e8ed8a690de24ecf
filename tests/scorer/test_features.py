import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.models import Interaction, Ticket
from services.core.models.base import new_id
from services.scorer.features import IdRange, load_features
from tests.api.customer_rows import insert_customer

AS_OF = datetime(2026, 6, 30, 12, tzinfo=UTC)


def _at(days_ago: float) -> datetime:
    return AS_OF - timedelta(days=days_ago)


async def _interactions(engine: AsyncEngine, customer_id: Any, *rows: dict[str, Any]) -> None:
    async with engine.begin() as conn:
        for row in rows:
            await conn.execute(
                insert(Interaction).values(id=new_id(), customer_id=customer_id, **row)
            )


async def test_features_as_of_a_time(app: FastAPI, engine: AsyncEngine) -> None:
    created = _at(400)
    active = await insert_customer(engine, created_at=created)
    silent = await insert_customer(engine, created_at=_at(10))
    await _interactions(
        engine,
        active,
        {"kind": "order", "occurred_at": _at(10), "amount": Decimal("100")},
        {"kind": "order", "occurred_at": _at(60), "amount": Decimal("50")},
        {"kind": "order", "occurred_at": _at(120), "amount": Decimal("30")},
        {"kind": "order", "occurred_at": _at(-5), "amount": Decimal("999")},  # after as_of
        {"kind": "visit", "occurred_at": _at(3)},
        {"kind": "complaint", "occurred_at": _at(20)},
        {"kind": "feedback", "occurred_at": _at(2), "satisfaction": 2},
        {"kind": "feedback", "occurred_at": _at(200), "nps": 10},
    )
    async with engine.begin() as conn:
        for ticket in (
            {
                "subject": "late",
                "kind": "complaint",
                "created_at": _at(5),
                "resolution_breached": True,
            },
            {"subject": "old", "kind": "request", "created_at": _at(100), "resolved_at": _at(90)},
        ):
            await conn.execute(insert(Ticket).values(id=new_id(), customer_id=active, **ticket))

    async with app.state.sessionmaker() as session:
        loaded = await load_features(session, [active, silent, new_id()], AS_OF)
        low, high = sorted([active, silent])
        by_range = await load_features(session, IdRange(low, high), AS_OF)
        to_the_end = await load_features(session, IdRange(low, None), AS_OF)

    ids, f = loaded.ids, loaded.columns
    assert ids == [active, silent] or ids == [silent, active]
    assert loaded.stages == ["onboarding", "onboarding"]
    assert by_range.ids == [low]
    assert sorted(to_the_end.ids) == [low, high]
    for name, column in f.items():
        assert np.array_equal(
            to_the_end.columns[name][to_the_end.ids.index(active)],
            column[ids.index(active)],
            equal_nan=True,
        ), name
    a, s = ids.index(active), ids.index(silent)
    assert f["days_since_order"][a] == 10
    assert f["days_since_interaction"][a] == 2
    assert (f["orders_30d"][a], f["orders_90d"][a], f["orders_365d"][a]) == (1, 2, 3)
    assert (f["orders_total"][a], f["days_since_first_order"][a]) == (3, 120)
    assert (f["revenue_90d"][a], f["revenue_prev_90d"][a]) == (150, 30)
    assert f["engagement_90d"][a] == 2  # the visit and the feedback 2 days ago
    assert f["complaints_90d"][a] == 2  # one complaint interaction, one complaint ticket
    assert f["satisfaction_latest"][a] == 2
    assert f["satisfaction_prev_avg"][a] == 5  # NPS 10 on the 1-5 scale
    assert f["open_tickets"][a] == 1
    assert f["sla_breaches_90d"][a] == 1
    assert math.isclose(f["tenure_days"][a], 400)

    assert math.isnan(f["days_since_order"][s])
    assert math.isnan(f["satisfaction_latest"][s])
    assert f["orders_365d"][s] == 0
    assert math.isclose(f["tenure_days"][s], 10)

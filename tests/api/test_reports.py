"""Retention reports over a small fixed history, checked against figures worked out by hand.

Churn after 60 days without any interaction; figures as of 2026-06-30 12:00 UTC.
- Alice (East, tier A, owner li, tag vip): orders Jan 10 (100), Jan 20 (50), Mar 5 (70);
  one spell, churned May 4.
- Bob (East, tier B, owner li): one order Jan 15 (200), churned Mar 16, won back by an order
  on May 20 (80).
- Cara (West, tier A, owner wu): an email Feb 10, orders Feb 12 (40), Feb 25 (60), churned
  Apr 26, won back by an order on Jun 1 (30).
- Dan (West): no interactions at all.
"""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.db import session_scope
from services.core.models import Alert, ChannelHealth, CustomerHealth, Interaction, Ticket
from services.core.models.base import new_id
from services.core.models.enums import Scope
from services.core.profiles import save_profile
from services.core.reports.refresh import refresh_reports
from services.core.scoring.profile import DEFAULT_PROFILE
from tests.api.customer_rows import insert_channel, insert_customer
from tests.conftest import KeyMaker
from tests.helpers import assert_problem, count_rows

AS_OF = datetime(2026, 6, 30, 12, tzinfo=UTC)
MONTHS = {"since": "2026-01-01", "until": "2026-07-01", "granularity": "month"}


def day(month: int, dom: int) -> datetime:
    return datetime(2026, month, dom, 9, tzinfo=UTC)


@pytest.fixture
async def history(app: Any, engine: AsyncEngine) -> dict[str, uuid.UUID]:
    east = await insert_channel(engine, name="East", region="East")
    west = await insert_channel(engine, name="West", region="West")
    ids = {
        "east": east,
        "west": west,
        "alice": await insert_customer(
            engine, name="Alice", channel_id=east, value_tier="A", owner="li", tags=["vip"]
        ),
        "bob": await insert_customer(
            engine, name="Bob", channel_id=east, value_tier="B", owner="li"
        ),
        "cara": await insert_customer(
            engine, name="Cara", channel_id=west, value_tier="A", owner="wu"
        ),
        "dan": await insert_customer(engine, name="Dan", channel_id=west),
    }
    orders = [
        ("alice", day(1, 10), 100),
        ("alice", day(1, 20), 50),
        ("alice", day(3, 5), 70),
        ("bob", day(1, 15), 200),
        ("bob", day(5, 20), 80),
        ("cara", day(2, 12), 40),
        ("cara", day(2, 25), 60),
        ("cara", day(6, 1), 30),
    ]
    rows = [
        {
            "id": new_id(),
            "customer_id": ids[who],
            "channel_id": east if who != "cara" else west,
            "kind": "order",
            "occurred_at": when,
            "amount": Decimal(amount),
        }
        for who, when, amount in orders
    ]
    rows.append(
        {
            "id": new_id(),
            "customer_id": ids["cara"],
            "channel_id": west,
            "kind": "email",
            "occurred_at": day(2, 10),
            "amount": None,
        }
    )
    health = [
        ("alice", 75.0, "green", 3.0),
        ("bob", 50.0, "yellow", -30.0),
        ("cara", 20.0, "red", -12.0),
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(Interaction), rows)
        await conn.execute(
            insert(CustomerHealth),
            [
                {
                    "customer_id": ids[who],
                    "score": score,
                    "band": band,
                    "trend": trend,
                    "contributions": {},
                    "features": {},
                    "profile_version": 1,
                    "as_of": AS_OF,
                }
                for who, score, band, trend in health
            ],
        )
        await conn.execute(
            insert(ChannelHealth),
            [
                {
                    "channel_id": channel,
                    "score": score,
                    "band": band,
                    "trend": trend,
                    "contributions": {},
                    "features": {},
                    "profile_version": 1,
                    "as_of": AS_OF,
                }
                for channel, score, band, trend in [
                    (east, 45.0, "yellow", -5.0),
                    (west, 80.0, "green", None),
                ]
            ],
        )
    async with session_scope(app.state.sessionmaker) as session:
        profile = DEFAULT_PROFILE.model_copy(update={"churn_inactivity_days": 60})
        await save_profile(session, profile, "test")
    async with session_scope(app.state.sessionmaker) as session:
        await refresh_reports(session, AS_OF)
    return ids


def values(period: dict[str, Any]) -> dict[str, Any]:
    return {name: figure["value"] for name, figure in period["figures"].items()}


async def test_retention_by_month(client: httpx.AsyncClient, history: dict[str, Any]) -> None:
    response = await client.get("/v1/reports/retention", params=MONTHS)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["churn_days"] == 60
    assert report["data_as_of"].startswith("2026-06-30T12:00")
    periods = report["periods"]
    assert [p["period_start"] for p in periods] == [f"2026-0{m}-01" for m in range(1, 7)]
    table = [
        (
            v["customers_at_start"],
            v["new"],
            v["won_back"],
            v["churned"],
            v["retained"],
            v["customers_at_end"],
            v["retention_rate"],
            v["churn_rate"],
        )
        for v in map(values, periods)
    ]
    assert table == [
        (0, 2, 0, 0, 0, 2, None, None),
        (2, 1, 0, 0, 2, 3, 100.0, 0.0),
        (3, 0, 0, 1, 2, 2, 66.7, 33.3),
        (2, 0, 0, 1, 1, 1, 50.0, 50.0),
        (1, 0, 1, 1, 0, 1, 0.0, 100.0),
        (1, 0, 1, 0, 1, 2, 100.0, 0.0),
    ]
    march = periods[2]["figures"]["retention_rate"]
    assert march == {"value": 66.7, "previous": 100.0, "change": pytest.approx(-33.3)}
    assert [p["complete"] for p in periods] == [True] * 5 + [False]


async def test_retention_filtered_by_tier_region_tag_owner(
    client: httpx.AsyncClient, history: dict[str, Any]
) -> None:
    async def at_end(**filters: Any) -> list[Any]:
        response = await client.get("/v1/reports/retention", params=MONTHS | filters)
        assert response.status_code == 200, response.text
        return [values(p)["customers_at_end"] for p in response.json()["periods"]]

    assert await at_end(tier="A") == [1, 2, 2, 1, 0, 1]
    assert await at_end(region="West") == [0, 1, 1, 0, 0, 1]
    assert await at_end(tag="vip") == [1, 1, 1, 1, 0, 0]
    assert await at_end(owner="li") == [2, 2, 1, 1, 1, 1]
    assert await at_end(channel_id=str(history["west"])) == [0, 1, 1, 0, 0, 1]
    assert await at_end(owner="nobody") == [0] * 6


async def test_retention_by_quarter_and_week(
    client: httpx.AsyncClient, history: dict[str, Any]
) -> None:
    params = {"since": "2026-01-01", "until": "2026-07-01", "granularity": "quarter"}
    quarters = (await client.get("/v1/reports/retention", params=params)).json()["periods"]
    # Q1: Alice, Bob, Cara new; Bob churned (started in Q1, so not from the start).
    # Q2: 2 at start; Cara and Alice churn; Bob and Cara won back.
    assert [(values(q)["customers_at_start"], values(q)["churned"]) for q in quarters] == [
        (0, 1),
        (2, 2),
    ]
    assert values(quarters[1])["retention_rate"] == 0.0
    params = {"since": "2026-03-16", "until": "2026-03-23", "granularity": "week"}
    weeks = (await client.get("/v1/reports/retention", params=params)).json()["periods"]
    assert [w["period_start"] for w in weeks] == ["2026-03-16"]
    assert values(weeks[0])["churned"] == 1  # Bob, on Monday 16 March


async def test_repurchase_by_month(client: httpx.AsyncClient, history: dict[str, Any]) -> None:
    response = await client.get("/v1/reports/repurchase", params=MONTHS)
    assert response.status_code == 200, response.text
    table = [
        (
            v["ordering_customers"],
            v["repeat_customers"],
            v["repeat_rate"],
            v["orders"],
            v["revenue"],
            v["average_order_interval_days"],
        )
        for v in map(values, response.json()["periods"])
    ]
    assert table == [
        (2, 1, 50.0, 3, 350.0, 10.0),
        (1, 1, 100.0, 2, 100.0, 13.0),
        (1, 0, 0.0, 1, 70.0, 44.0),
        (0, 0, None, 0, 0.0, None),
        (1, 0, 0.0, 1, 80.0, 125.0),
        (1, 0, 0.0, 1, 30.0, 96.0),
    ]
    april = response.json()["periods"][3]["figures"]["orders"]
    assert april == {"value": 0, "previous": 1, "change": -1}


async def test_cohorts(client: httpx.AsyncClient, history: dict[str, Any]) -> None:
    params: dict[str, str | int] = {"since": "2026-01-01", "until": "2026-03-01", "months": 6}
    response = await client.get("/v1/reports/cohorts", params=params)
    assert response.status_code == 200, response.text
    january, february = response.json()["cohorts"]
    assert (january["cohort"], january["customers"]) == ("2026-01-01", 2)
    # June is not over on 30 June: January's row stops at May (4 months on).
    assert [f["value"] for f in january["retention"]] == [100.0, 0.0, 50.0, 0.0, 50.0]
    assert [f["value"] for f in february["retention"]] == [100.0, 0.0, 0.0, 0.0]
    assert february["retention"][1]["previous"] == 0.0
    assert february["retention"][2] == {"value": 0.0, "previous": 50.0, "change": -50.0}


async def test_health_bands_percentiles_and_movers(
    client: httpx.AsyncClient, history: dict[str, Any]
) -> None:
    response = await client.get("/v1/reports/health", params=MONTHS)
    assert response.status_code == 200, response.text
    report = response.json()
    june = report["periods"][-1]
    assert june["snapshot_day"] == "2026-06-30"
    assert values(june) == {
        "scored": 3,
        "green": 1,
        "yellow": 1,
        "red": 1,
        "red_share": 33.3,
        "p10": 20.0,
        "p25": 20.0,
        "median": 50.0,
        "p75": 75.0,
        "p90": 75.0,
    }
    assert all(v is None for v in values(report["periods"][0]).values())
    assert [(m["name"], m["change"]) for m in report["movers"]] == [("Bob", -30.0), ("Cara", -12.0)]
    tier_a = await client.get("/v1/reports/health", params=MONTHS | {"tier": "A"})
    assert values(tier_a.json()["periods"][-1])["scored"] == 2
    assert [m["name"] for m in tier_a.json()["movers"]] == ["Cara"]


async def test_channel_leaderboard(
    client: httpx.AsyncClient, history: dict[str, Any], engine: AsyncEngine
) -> None:
    east = history["east"]
    async with engine.begin() as conn:
        rule = (await conn.execute(text("SELECT id FROM alert_rules LIMIT 1"))).scalar_one()
        await conn.execute(
            insert(Alert),
            [
                {
                    "id": new_id(),
                    "rule_id": rule,
                    "subject": "channel",
                    "subject_id": east,
                    "channel_id": east,
                    "severity": "high",
                    "reason": {},
                    "due_at": AS_OF,
                }
            ],
        )
        await conn.execute(
            insert(Ticket),
            [
                {
                    "id": new_id(),
                    "customer_id": history["bob"],
                    "channel_id": east,
                    "subject": "Late",
                    "kind": "complaint",
                    "created_at": day(6, d),
                    "first_response_due_at": day(6, d) + timedelta(hours=4),
                    "resolved_at": day(6, d) + timedelta(hours=1),
                    "resolution_breached": breached,
                }
                for d, breached in [(5, False), (6, True)]
            ],
        )
    params = {"until": "2026-07-01", "granularity": "month", "sort": "revenue", "order": "desc"}
    response = await client.get("/v1/reports/channels", params=params)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["since"] == "2026-06-01"
    rows = {r["name"]: r["figures"] for r in report["channels"]}
    assert [r["name"] for r in report["channels"]] == ["West", "East"]
    assert rows["East"]["health"] == {"value": 45.0, "previous": 50.0, "change": -5.0}
    assert rows["East"]["revenue"] == {"value": 0.0, "previous": 80.0, "change": -80.0}
    assert rows["East"]["revenue_trend"]["value"] == -100.0
    assert rows["East"]["churned"]["previous"] == 1
    assert rows["East"]["open_alerts"]["value"] == 1
    assert rows["East"]["sla_compliance"]["value"] == 50.0
    assert rows["West"]["revenue"]["value"] == 30.0
    assert rows["West"]["revenue_trend"]["value"] is None
    assert rows["West"]["sla_compliance"]["value"] is None
    weakest = await client.get("/v1/reports/channels", params={"until": "2026-07-01"})
    assert [r["name"] for r in weakest.json()["channels"]] == ["East", "West"]


async def test_alerts_report(
    client: httpx.AsyncClient, history: dict[str, Any], engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        rule = (
            await conn.execute(text("SELECT id FROM alert_rules ORDER BY id LIMIT 1"))
        ).scalar_one()
        base = {
            "rule_id": rule,
            "subject": "customer",
            "severity": "high",
            "reason": {},
            "due_at": AS_OF,
        }
        alerts = [
            # opened, closed, status, owner, customer
            (day(5, 1), day(5, 2), "resolved", "li", "alice"),
            (day(5, 3), day(5, 7), "resolved", "li", "bob"),
            (day(5, 10), day(6, 1), "dismissed", "wu", "cara"),
            (day(6, 2), None, "open", "wu", "cara"),
            (day(6, 3), day(6, 3) + timedelta(hours=6), "resolved", None, "bob"),
        ]
        await conn.execute(
            insert(Alert),
            [
                base
                | {
                    "id": new_id(),
                    "subject_id": history[who],
                    "channel_id": history["west"] if who == "cara" else history["east"],
                    "opened_at": opened,
                    "closed_at": closed,
                    "status": status,
                    "owner": owner,
                }
                for opened, closed, status, owner, who in alerts
            ],
        )
    params = {"since": "2026-05-01", "until": "2026-07-01", "group_by": "owner"}
    response = await client.get("/v1/reports/alerts", params=params)
    assert response.status_code == 200, response.text
    cells = {(p["period_start"], p["group"]): values(p) for p in response.json()["periods"]}
    assert cells[("2026-05-01", "li")] == {
        "opened": 2,
        "resolved": 2,
        "dismissed": 0,
        "median_hours_to_resolve": 60.0,  # 24 h and 96 h
    }
    assert cells[("2026-06-01", "wu")] == {
        "opened": 1,
        "resolved": 0,
        "dismissed": 1,
        "median_hours_to_resolve": None,
    }
    assert cells[("2026-06-01", None)]["median_hours_to_resolve"] == 6.0
    by_rule = await client.get(
        "/v1/reports/alerts", params={"since": "2026-06-01", "until": "2026-07-01", "tier": "A"}
    )
    (only,) = by_rule.json()["periods"]
    assert only["group"] == str(rule)
    assert only["group_name"]
    assert values(only)["opened"] == 1  # Cara's; Bob is tier B


async def test_csv(client: httpx.AsyncClient, history: dict[str, Any]) -> None:
    response = await client.get(
        "/v1/reports/retention", params=MONTHS, headers={"Accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    header, *lines = response.text.splitlines()
    columns = header.split(",")
    assert columns[:3] == ["period_start", "period_end", "complete"]
    assert {"retention_rate", "retention_rate_previous", "retention_rate_change"} <= set(columns)
    march = dict(zip(columns, lines[2].split(","), strict=True))
    assert (march["period_start"], march["retention_rate"], march["churned"]) == (
        "2026-03-01",
        "66.7",
        "1",
    )
    cohorts = await client.get(
        "/v1/reports/cohorts",
        params={"since": "2026-01-01", "until": "2026-03-01", "months": 6},
        headers={"Accept": "text/csv"},
    )
    cohort_columns = cohorts.text.splitlines()[0].split(",")
    assert cohort_columns[:2] == ["cohort", "customers"]
    assert "retention_4" in cohort_columns


async def test_before_any_refresh(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/reports/retention", params=MONTHS)
    assert response.status_code == 200
    report = response.json()
    assert report["data_as_of"] is None
    assert [values(p)["customers_at_start"] for p in report["periods"]] == [0] * 6


async def test_refresh_twice_gives_the_same_figures(
    app: Any, client: httpx.AsyncClient, history: dict[str, Any], engine: AsyncEngine
) -> None:
    before = (await client.get("/v1/reports/retention", params=MONTHS)).json()["periods"]
    rows = await count_rows(engine, "report_periods")
    async with session_scope(app.state.sessionmaker) as session:
        await refresh_reports(session, AS_OF)
    after = (await client.get("/v1/reports/retention", params=MONTHS)).json()["periods"]
    assert after == before
    assert await count_rows(engine, "report_periods") == rows
    # One a segment with scores: Alice, Bob and Cara each have a segment of their own.
    assert await count_rows(engine, "report_health_days") == 3


async def test_refresh_request_queues_a_job(client_for: KeyMaker, engine: AsyncEngine) -> None:
    reader = await client_for(Scope.read)
    assert (await reader.post("/v1/reports/refresh")).status_code == 403
    admin = await client_for(Scope.admin)
    response = await admin.post("/v1/reports/refresh")
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["kind"], job["status"]) == ("report_refresh", "queued")
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert await count_rows(engine, "outbox_events", "payload->>'kind' = 'report_refresh'") == 1


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("retention", {"granularity": "day"}, "query.granularity"),
        ("retention", {"since": "2026-05-01", "until": "2026-04-01"}, "query.until"),
        (
            "retention",
            {"since": "2000-01-01", "until": "2026-01-01", "granularity": "week"},
            "query.since",
        ),
        ("repurchase", {"since": "yesterday"}, "query.since"),
        ("channels", {"until": "0003-08-01", "granularity": "quarter"}, "query.until"),
        ("retention", {"since": "9999-12-01", "granularity": "week"}, "query.since"),
        ("cohorts", {"months": 0}, "query.months"),
        ("health", {"tier": "Z"}, "query.tier"),
        ("channels", {"sort": "name"}, "query.sort"),
        ("channels", {"channel_id": "east"}, "query.channel_id"),
        ("alerts", {"group_by": "severity"}, "query.group_by"),
    ],
)
async def test_bad_parameters(
    client: httpx.AsyncClient, path: str, params: dict[str, str], field: str
) -> None:
    assert_problem(await client.get(f"/v1/reports/{path}", params=params), 422, field)


async def test_reports_need_a_key(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/v1/reports/retention")).status_code == 401

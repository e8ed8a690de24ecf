"""Health scores as the API shows them. The worker writes scores; these tests write the rows
straight to the database and check the reads, lists, filters and sort."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.pagination import encode_cursor
from services.core.models import (
    ChannelHealth,
    ChannelHealthHistory,
    CustomerHealth,
    CustomerHealthHistory,
)
from services.core.models.enums import Scope
from tests.api.customer_rows import insert_channel, insert_customer
from tests.conftest import KeyMaker
from tests.helpers import assert_problem, walk

MISSING = "01970000-0000-7000-8000-000000000000"
AS_OF = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
CONTRIBUTIONS = {"recency": 30.0, "frequency": 12.5, "support": 8.0}


def band_of(score: float) -> str:
    return "green" if score >= 70 else "yellow" if score >= 40 else "red"


async def score_customer(
    engine: AsyncEngine, customer_id: uuid.UUID, score: float, **fields: Any
) -> dict[str, Any]:
    row = {
        "customer_id": customer_id,
        "score": score,
        "band": band_of(score),
        "contributions": CONTRIBUTIONS,
        "features": {"days_since_order": 12, "orders_90d": 3},
        "trend": -4.5,
        "profile_version": 1,
        "as_of": AS_OF,
        **fields,
    }
    async with engine.begin() as conn:
        await conn.execute(insert(CustomerHealth), [row])
    return row


async def score_channel(engine: AsyncEngine, channel_id: uuid.UUID, score: float) -> None:
    row = {
        "channel_id": channel_id,
        "score": score,
        "band": band_of(score),
        "contributions": {"customers": score * 0.7, "activity": score * 0.3},
        "features": {"customers": 4},
        "trend": None,
        "profile_version": 2,
        "as_of": AS_OF,
    }
    async with engine.begin() as conn:
        await conn.execute(insert(ChannelHealth), [row])


async def add_history(
    engine: AsyncEngine, model: Any, key: str, subject_id: uuid.UUID, times: list[datetime]
) -> None:
    rows = [
        {
            key: subject_id,
            "score": float(50 + i),
            "band": "yellow",
            "contributions": CONTRIBUTIONS,
            "profile_version": 1,
            "as_of": at,
        }
        for i, at in enumerate(times)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(model), rows)


async def test_customer_health(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    scored = await insert_customer(engine)
    row = await score_customer(engine, scored, 63.25)
    response = await client.get(f"/v1/customers/{scored}/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_id"] == str(scored)
    assert (body["score"], body["band"], body["trend"]) == (63.25, "yellow", -4.5)
    assert datetime.fromisoformat(body["as_of"]) == AS_OF
    assert body["profile_version"] == 1
    assert body["contributions"] == CONTRIBUTIONS
    assert body["features"] == row["features"]
    assert "computed_at" in body

    unscored = await insert_customer(engine)
    not_yet = assert_problem(await client.get(f"/v1/customers/{unscored}/health"), 404)
    assert "not scored yet" in not_yet["detail"]
    missing = assert_problem(await client.get(f"/v1/customers/{MISSING}/health"), 404)
    assert "does not exist" in missing["detail"]
    assert_problem(await client.get("/v1/customers/nope/health"), 422, "path.customer_id")


async def test_channel_health(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    scored = await insert_channel(engine)
    await score_channel(engine, scored, 80.0)
    response = await client.get(f"/v1/channels/{scored}/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["channel_id"] == str(scored)
    assert (body["score"], body["band"], body["trend"]) == (80.0, "green", None)
    assert body["contributions"] == {"customers": 56.0, "activity": 24.0}
    assert body["profile_version"] == 2

    unscored = await insert_channel(engine)
    not_yet = assert_problem(await client.get(f"/v1/channels/{unscored}/health"), 404)
    assert "not scored yet" in not_yet["detail"]
    missing = assert_problem(await client.get(f"/v1/channels/{MISSING}/health"), 404)
    assert "does not exist" in missing["detail"]


async def test_customer_history_pages_newest_first(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    customer = await insert_customer(engine)
    other = await insert_customer(engine)
    days = [AS_OF - timedelta(days=d) for d in (9, 3, 0, 5, 1, 7, 2)]
    # two rows for the same as_of: the id breaks the tie
    await add_history(engine, CustomerHealthHistory, "customer_id", customer, [*days, days[2]])
    await add_history(engine, CustomerHealthHistory, "customer_id", other, [AS_OF])
    url = f"/v1/customers/{customer}/health/history"

    seen = await walk(client, url, limit=3)
    assert len(seen) == 8
    assert len({h["id"] for h in seen}) == 8
    keys = [(datetime.fromisoformat(h["as_of"]), h["id"]) for h in seen]
    assert keys == sorted(keys, reverse=True)
    assert seen[0]["contributions"] == CONTRIBUTIONS
    assert set(seen[0]) == {"id", "score", "band", "contributions", "profile_version", "as_of"}

    since, until = AS_OF - timedelta(days=5), AS_OF - timedelta(days=1)
    window = await walk(client, url, limit=2, since=since.isoformat(), until=until.isoformat())
    assert [datetime.fromisoformat(h["as_of"]) for h in window] == [
        AS_OF - timedelta(days=d) for d in (2, 3, 5)
    ]
    recent = await walk(client, url, since=(AS_OF - timedelta(days=1)).isoformat())
    assert len(recent) == 3
    old = await walk(client, url, until=(AS_OF - timedelta(days=7)).isoformat())
    assert [datetime.fromisoformat(h["as_of"]) for h in old] == [AS_OF - timedelta(days=9)]


async def test_history_of_unscored_missing_and_bad_queries(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    unscored = await insert_customer(engine)
    empty = await client.get(f"/v1/customers/{unscored}/health/history")
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"items": [], "next_cursor": None}
    assert_problem(await client.get(f"/v1/customers/{MISSING}/health/history"), 404)
    assert_problem(await client.get(f"/v1/channels/{MISSING}/health/history"), 404)
    url = f"/v1/customers/{unscored}/health/history"
    for params, field in (
        ({"since": "2026-01-01T00:00:00"}, "query.since"),
        ({"until": "tomorrow"}, "query.until"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "query.until"),
        ({"cursor": "garbage"}, "query.cursor"),
        ({"limit": 101}, "query.limit"),
    ):
        assert_problem(await client.get(url, params=params), 422, field)
    # a cursor from another list's sort is refused, not misread
    await insert_customer(engine)
    await insert_customer(engine)
    other = await client.get("/v1/customers", params={"limit": 1, "sort": "name"})
    assert_problem(await client.get(url, params={"cursor": other.json()["next_cursor"]}), 422)


async def test_channel_history(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    channel = await insert_channel(engine)
    times = [AS_OF - timedelta(hours=h) for h in range(5)]
    await add_history(engine, ChannelHealthHistory, "channel_id", channel, times)
    seen = await walk(client, f"/v1/channels/{channel}/health/history", limit=2)
    assert [datetime.fromisoformat(h["as_of"]) for h in seen] == times
    empty = await insert_channel(engine)
    listed = await client.get(f"/v1/channels/{empty}/health/history")
    assert listed.json() == {"items": [], "next_cursor": None}


async def test_list_items_carry_health(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    scored = await insert_customer(engine, name="scored")
    unscored = await insert_customer(engine, name="unscored")
    await score_customer(engine, scored, 72.5)
    items = {c["id"]: c for c in await walk(client, "/v1/customers")}
    assert items[str(unscored)]["health"] is None
    health = items[str(scored)]["health"]
    assert health["score"] == 72.5
    assert health["band"] == "green"
    assert datetime.fromisoformat(health["as_of"]) == AS_OF
    assert set(health) == {"score", "band", "as_of"}
    single = (await client.get(f"/v1/customers/{scored}")).json()
    assert "health" not in single
    assert {k: v for k, v in items[str(scored)].items() if k != "health"} == single

    channel = await insert_channel(engine, name="scored")
    bare = await insert_channel(engine, name="bare")
    await score_channel(engine, channel, 35.0)
    channels = {c["id"]: c for c in await walk(client, "/v1/channels")}
    assert channels[str(bare)]["health"] is None
    assert channels[str(channel)]["health"]["band"] == "red"
    assert "health" not in (await client.get(f"/v1/channels/{channel}")).json()


async def test_list_is_one_query_however_many_rows(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    for i in range(12):
        customer = await insert_customer(engine, name=f"c{i}")
        if i % 2:
            await score_customer(engine, customer, float(i * 5))
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        page = await client.get("/v1/customers", params={"limit": 12, "sort": "-score"})
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert page.status_code == 200
    assert len(page.json()["items"]) == 12
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, statements
    assert "LEFT OUTER JOIN customer_health" in selects[0]


async def test_band_and_score_filters(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    ids: dict[float | None, str] = {}
    for score in (10.0, 39.9, 40.0, 50.0, 80.0, 95.0, None):
        customer = await insert_customer(engine, name=f"score {score}")
        if score is not None:
            await score_customer(engine, customer, score)
        ids[score] = str(customer)

    async def scores(**params: Any) -> set[float | None]:
        found = {c["id"] for c in await walk(client, "/v1/customers", limit=2, **params)}
        return {score for score, cid in ids.items() if cid in found}

    assert await scores() == set(ids)
    assert await scores(band="green") == {80.0, 95.0}
    assert await scores(band="yellow") == {40.0, 50.0}
    assert await scores(band="red") == {10.0, 39.9}
    assert await scores(score_min=40) == {40.0, 50.0, 80.0, 95.0}
    assert await scores(score_max=40) == {10.0, 39.9, 40.0}
    assert await scores(score_min=39.9, score_max=80) == {39.9, 40.0, 50.0, 80.0}
    assert await scores(band="green", score_max=90) == {80.0}
    assert await scores(band="red", score_min=50) == set()
    assert await scores(band="green", sort="-score") == {80.0, 95.0}

    for params, field in (
        ({"band": "purple"}, "query.band"),
        ({"score_min": -1}, "query.score_min"),
        ({"score_max": 101}, "query.score_max"),
        ({"score_min": "high"}, "query.score_min"),
        ({"score_min": "nan"}, "query.score_min"),
        ({"score_min": 60, "score_max": 50}, "query.score_max"),
    ):
        assert_problem(await client.get("/v1/customers", params=params), 422, field)
    channel = await insert_channel(engine)
    await score_channel(engine, channel, 75.0)
    await insert_channel(engine)
    green = await walk(client, "/v1/channels", band="green", score_min=70)
    assert [c["id"] for c in green] == [str(channel)]
    assert_problem(
        await client.get("/v1/channels", params={"score_min": 9, "score_max": 1}),
        422,
        "query.score_max",
    )


def score_key(item: dict[str, Any]) -> tuple[float, str]:
    health = item["health"]
    return (-1.0 if health is None else health["score"], item["id"])


async def test_sort_by_score_walks_without_gaps_or_repeats(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    for i in range(23):
        customer = await insert_customer(engine, name=f"客户 {i:02d}")
        if i % 3:  # a third unscored; ties among the scored
            await score_customer(engine, customer, float(i % 5) * 20.0 + 0.5)
    everyone = {c["id"] for c in await walk(client, "/v1/customers", limit=100)}
    assert len(everyone) == 23
    for sort in ("-score", "score"):
        seen = await walk(client, "/v1/customers", limit=4, sort=sort)
        assert [c["id"] for c in seen] != [], sort
        assert len(seen) == 23, sort
        assert {c["id"] for c in seen} == everyone, sort
        keys = [score_key(c) for c in seen]
        assert keys == sorted(keys, reverse=sort.startswith("-")), sort
    descending = await walk(client, "/v1/customers", limit=5, sort="-score")
    assert descending[0]["health"]["score"] == 80.5
    assert all(c["health"] is None for c in descending[-8:])

    page = await client.get("/v1/customers", params={"limit": 2, "sort": "-score"})
    cursor = page.json()["next_cursor"]
    wrong = await client.get("/v1/customers", params={"cursor": cursor, "sort": "name"})
    assert_problem(wrong, 422, "query.cursor")
    forged = encode_cursor("-score", ["high", MISSING])
    forged_page = await client.get("/v1/customers", params={"cursor": forged, "sort": "-score"})
    assert_problem(forged_page, 422, "query.cursor")

    for i in range(7):
        channel = await insert_channel(engine, name=f"ch{i}")
        if i % 2:
            await score_channel(engine, channel, 30.0 + i)
    channels = await walk(client, "/v1/channels", limit=2, sort="-score")
    assert len({c["id"] for c in channels}) == 7
    keys = [score_key(c) for c in channels]
    assert keys == sorted(keys, reverse=True)


async def test_readers_see_health(
    client_for: KeyMaker, anonymous: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    reader = await client_for(Scope.read)
    customer = await insert_customer(engine)
    await score_customer(engine, customer, 55.0)
    assert (await reader.get(f"/v1/customers/{customer}/health")).status_code == 200
    assert (await reader.get(f"/v1/customers/{customer}/health/history")).status_code == 200
    assert_problem(await anonymous.get(f"/v1/customers/{customer}/health"), 401)
    assert_problem(await anonymous.get(f"/v1/customers/{customer}/health/history"), 401)

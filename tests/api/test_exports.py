"""Streamed exports: every row a list shows with the same filters, as CSV and NDJSON, in a
fixed order, chunk by chunk."""

import csv
import io
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from services.api.exports import kinds, stream
from services.api.exports.encoding import ExportFormat
from services.api.interactions.service import InteractionFilters
from services.core.models import Interaction, InteractionExternalId
from services.core.models.base import new_id
from services.core.models.enums import AlertStatus, InteractionKind, Scope
from tests.api.customer_rows import insert_channel, insert_customer
from tests.api.test_alerts import insert_alert, insert_rule
from tests.api.test_health_api import score_customer
from tests.conftest import KeyMaker
from tests.helpers import assert_problem, walk

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
KINDS = ("customers", "interactions", "alerts", "scores")
COLUMNS = {
    "customers": [
        "id", "external_ref", "name", "email", "phone", "address", "owner", "channel_id",
        "value_tier", "lifecycle_stage", "tags", "attributes", "birthday", "contract_end",
        "notes", "archived_at", "created_at", "updated_at", "version",
        "health_score", "health_band", "health_as_of",
    ],
    "interactions": [
        "id", "customer_id", "channel_id", "kind", "occurred_at", "amount", "currency",
        "satisfaction", "nps", "external_id", "summary", "attributes", "created_at",
    ],
    "alerts": [
        "id", "rule_id", "rule_name", "subject", "subject_id", "channel_id", "severity",
        "status", "reason", "owner", "due_at", "opened_at", "last_fired_at", "fire_count",
        "acknowledged_at", "acknowledged_by", "closed_at", "closed_by", "updated_at", "version",
    ],
    "scores": [
        "customer_id", "external_ref", "name", "channel_id", "owner", "value_tier",
        "lifecycle_stage", "score", "band", "trend", "as_of", "profile_version",
        "contributions", "computed_at",
    ],
}  # fmt: skip
"""The documented column order of each export."""


# Reading what comes back


def csv_rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(response.content.decode(), newline="")))


def ndjson_rows(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = response.content.split(b"\n")
    assert lines[-1] == b""  # every object ends its line
    return [json.loads(line) for line in lines[:-1]]


def agrees(cells: dict[str, str], obj: dict[str, Any]) -> None:
    """A CSV row says what the NDJSON object says: empty for null, JSON text for lists and
    objects, the text of the rest."""
    assert list(cells) == list(obj)
    for name, value in obj.items():
        cell = cells[name]
        if value is None:
            assert cell == "", name
        elif isinstance(value, list | dict):
            assert json.loads(cell) == value, name
        else:
            assert cell == str(value), name


async def export(
    client: httpx.AsyncClient, kind: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The NDJSON export, checked against the CSV export of the same filters."""
    ndjson = ndjson_rows(
        await client.get(f"/v1/exports/{kind}", params={**(params or {}), "format": "ndjson"})
    )
    rows = csv_rows(
        await client.get(f"/v1/exports/{kind}", params={**(params or {}), "format": "csv"})
    )
    assert len(rows) == len(ndjson)
    for cells, obj in zip(rows, ndjson, strict=True):
        agrees(cells, obj)
    return ndjson


def checked_out(engine: AsyncEngine) -> int:
    """Connections taken from the app's pool and not given back."""
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedout()


def flat(item: dict[str, Any]) -> dict[str, Any]:
    """A customer list item as the export writes it: the health summary as three columns."""
    health = item.pop("health") or {}
    return item | {f"health_{k}": health.get(k) for k in ("score", "band", "as_of")}


# Data


async def customers_with_scores(engine: AsyncEngine) -> dict[str, uuid.UUID]:
    east = await insert_channel(engine, name="华东")
    west = await insert_channel(engine, name="West")
    ids = {"east": east, "west": west}
    ids["a"] = await insert_customer(
        engine,
        name="张敏",
        external_ref="CRM-1",
        email="zhang.min@example.com",
        channel_id=east,
        owner="li",
        value_tier="A",
        lifecycle_stage="active",
        tags=["vip", "华东", "a|b, c"],
        attributes={"seats": 12, "备注": "微信"},
        birthday=date(1988, 4, 12),
        notes='line 1\nline 2, "quoted"',
        created_at=T0,
    )
    ids["b"] = await insert_customer(
        engine, name="Wang Fang", owner="li", value_tier="B", channel_id=west, created_at=T0
    )
    ids["c"] = await insert_customer(
        engine, name="Zhao Lei", owner="zhao", tags=["vip"], created_at=T0 + HOUR
    )
    ids["unscored"] = await insert_customer(engine, name="新客户", created_at=T0 + 2 * HOUR)
    ids["archived"] = await insert_customer(
        engine, name="Gone", owner="li", archived_at=T0, created_at=T0 + 3 * HOUR
    )
    await score_customer(engine, ids["a"], 63.5)
    await score_customer(engine, ids["b"], 81.0, trend=None, profile_version=2)
    await score_customer(engine, ids["c"], 22.25)
    await score_customer(engine, ids["archived"], 50.0)
    return ids


async def insert_interactions(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        for row in rows:  # one by one: the rows give different columns
            row_id = new_id()
            await conn.execute(insert(Interaction).values(id=row_id, **row))
            if row.get("external_id") is not None:
                key = {"interaction_id": row_id, "occurred_at": row["occurred_at"]}
                await conn.execute(
                    insert(InteractionExternalId).values(external_id=row["external_id"], **key)
                )


# Content


async def test_customers_export_is_the_list_with_health_flattened(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ids = await customers_with_scores(engine)
    rows = await export(client, "customers")
    assert list(rows[0]) == COLUMNS["customers"]
    listed = [flat(item) for item in await walk(client, "/v1/customers", sort="created_at")]
    assert rows == listed
    assert [r["id"] for r in rows] == [
        str(i) for i in sorted([ids["a"], ids["b"]]) + [ids["c"], ids["unscored"]]
    ]
    first = next(r for r in rows if r["id"] == str(ids["a"]))
    assert first["tags"] == ["vip", "华东", "a|b, c"]
    assert first["notes"] == 'line 1\nline 2, "quoted"'
    assert (first["health_score"], first["health_band"]) == (63.5, "yellow")
    unscored = next(r for r in rows if r["id"] == str(ids["unscored"]))
    assert (unscored["health_score"], unscored["health_as_of"]) == (None, None)

    cells = csv_rows(await client.get("/v1/exports/customers"))  # csv by default
    mine = next(c for c in cells if c["id"] == str(ids["a"]))
    assert mine["tags"] == '["vip","华东","a|b, c"]'
    assert mine["attributes"] == '{"seats":12,"备注":"微信"}'
    assert mine["created_at"] == "2026-03-01T09:00:00Z"
    assert mine["health_as_of"] == "2026-02-01T09:00:00Z"
    assert mine["email"] == "zhang.min@example.com"
    assert mine["phone"] == ""


async def test_json_values_beyond_64_bits_export_whole(client: httpx.AsyncClient) -> None:
    """JSON columns keep any integer the API accepted; the export must not stop at one."""
    huge = 2**70
    created = await client.post("/v1/customers", json={"name": "Big", "attributes": {"n": huge}})
    assert created.status_code == 201, created.text
    (row,) = await export(client, "customers")
    assert row["attributes"] == {"n": huge}
    (cell,) = csv_rows(await client.get("/v1/exports/customers"))
    assert cell["attributes"] == f'{{"n":{huge}}}'
    assert cell["created_at"].endswith("Z")


async def test_scores_export_is_the_current_health_of_scored_listed_customers(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ids = await customers_with_scores(engine)
    rows = await export(client, "scores")
    assert rows
    assert list(rows[0]) == COLUMNS["scores"]
    expected = [str(i) for i in sorted([ids["a"], ids["b"]]) + [ids["c"]]]
    assert [r["customer_id"] for r in rows] == expected  # not unscored, not archived
    for row in rows:
        health = (await client.get(f"/v1/customers/{row['customer_id']}/health")).json()
        customer = (await client.get(f"/v1/customers/{row['customer_id']}")).json()
        for name in ("score", "band", "trend", "as_of", "profile_version", "contributions"):
            assert row[name] == health[name], name
        assert row["computed_at"] == health["computed_at"]
        for name in ("external_ref", "name", "channel_id", "owner", "value_tier"):
            assert row[name] == customer[name], name
    b = next(r for r in rows if r["customer_id"] == str(ids["b"]))
    assert (b["score"], b["band"], b["trend"], b["profile_version"]) == (81.0, "green", None, 2)


async def test_interactions_export_is_the_list_oldest_first(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    channel = await insert_channel(engine)
    customer = await insert_customer(engine, channel_id=channel)
    await insert_interactions(
        engine,
        [
            {
                "customer_id": customer,
                "channel_id": channel,
                "kind": InteractionKind.order,
                "occurred_at": T0 + HOUR,
                "amount": Decimal("1280.5"),
                "currency": "CNY",
                "external_id": "ORD-1",
                "summary": '首单, "试用"\n第二行',
                "attributes": {"sku": ["A-1", "B-2"]},
            },
            {
                "customer_id": customer,
                "kind": InteractionKind.feedback,
                "occurred_at": T0,
                "satisfaction": 4,
                "nps": 9,
            },
        ],
    )
    rows = await export(client, "interactions")
    assert rows == await walk(client, "/v1/interactions", sort="occurred_at")
    assert [r["kind"] for r in rows] == ["feedback", "order"]
    assert rows[1]["amount"] == "1280.5000"
    assert rows[1]["summary"] == '首单, "试用"\n第二行'
    cells = csv_rows(await client.get("/v1/exports/interactions"))
    assert list(cells[0]) == COLUMNS["interactions"]
    assert (cells[0]["satisfaction"], cells[0]["amount"], cells[1]["amount"]) == (
        "4",
        "",
        "1280.5000",
    )


async def test_alerts_export_is_the_list_oldest_first(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    customer = await insert_customer(engine)
    rule = await insert_rule(engine, name="转红 Turned red")
    first = await insert_alert(engine, rule, customer, owner="li", opened_at=T0)
    second = await insert_alert(
        engine, rule, customer, status=AlertStatus.resolved, opened_at=T0 + HOUR
    )
    rows = await export(client, "alerts")
    listed = await walk(client, "/v1/alerts")  # newest first
    assert rows == listed[::-1]
    assert [r["id"] for r in rows] == [str(first), str(second)]
    assert list(rows[0]) == COLUMNS["alerts"]
    assert rows[0]["rule_name"] == "转红 Turned red"
    assert rows[0]["reason"]["band"] == "red"


@pytest.mark.parametrize("kind", KINDS)
async def test_an_empty_export_is_a_header_or_nothing(client: httpx.AsyncClient, kind: str) -> None:
    response = await client.get(f"/v1/exports/{kind}")
    assert response.status_code == 200
    assert response.content == (",".join(COLUMNS[kind]) + "\r\n").encode()
    assert ndjson_rows(await client.get(f"/v1/exports/{kind}?format=ndjson")) == []


# Filters


async def test_customer_and_score_filters_are_the_lists(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ids = await customers_with_scores(engine)
    every = await export(client, "customers")
    for params in (
        {"owner": "li"},
        {"tier": "A"},
        {"lifecycle_stage": "active"},
        {"tag": "vip"},
        {"channel_id": str(ids["east"])},
        {"band": "yellow"},
        {"score_min": 60},
        {"score_max": 70, "owner": "li"},
        {"q": "张"},
        {"created_after": (T0 + HOUR).isoformat()},
        {"created_before": (T0 + HOUR).isoformat()},
        {"include_archived": "true", "owner": "li"},
    ):
        listed = await walk(client, "/v1/customers", sort="created_at", **params)
        rows = await export(client, "customers", params)
        assert [r["id"] for r in rows] == [i["id"] for i in listed], params
        narrowed = "include_archived" not in params
        assert 0 < len(rows) < len(every) or not narrowed, params
        scored = [i["id"] for i in listed if i["health"] is not None]
        scores = await export(client, "scores", params)
        assert [r["customer_id"] for r in scores] == scored, params


async def test_interaction_filters_are_the_lists(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    channel = await insert_channel(engine)
    one = await insert_customer(engine, channel_id=channel)
    two = await insert_customer(engine)
    await insert_interactions(
        engine,
        [
            {
                "customer_id": customer,
                "channel_id": channel if customer == one else None,
                "kind": kind,
                "occurred_at": T0 + i * HOUR,
                "external_id": f"E-{i}",
            }
            for i, (customer, kind) in enumerate(
                [(one, "visit"), (two, "call"), (one, "call"), (two, "visit"), (one, "email")]
            )
        ],
    )
    for params in (
        {"customer_id": str(one)},
        {"channel_id": str(channel)},
        {"kind": "call"},
        {"external_id": "E-3"},
        {"occurred_after": (T0 + HOUR).isoformat(), "occurred_before": (T0 + 3 * HOUR).isoformat()},
        {"customer_id": str(two), "kind": "visit"},
    ):
        listed = await walk(client, "/v1/interactions", sort="occurred_at", **params)
        rows = await export(client, "interactions", params)
        assert rows == listed, params
        assert 0 < len(rows) < 5, params


async def test_alert_filters_are_the_lists(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    channel = await insert_channel(engine)
    one = await insert_customer(engine, channel_id=channel)
    two = await insert_customer(engine)
    red, silent = await insert_rule(engine), await insert_rule(engine, name="Silent")
    await insert_alert(engine, red, one, owner="li", channel_id=channel, opened_at=T0)
    await insert_alert(
        engine, silent, one, status="acknowledged", severity="low", opened_at=T0 + HOUR
    )
    await insert_alert(engine, red, two, status="resolved", owner="li", opened_at=T0 + 2 * HOUR)
    await insert_alert(engine, silent, two, status="dismissed", opened_at=T0 + 3 * HOUR)
    for params in (
        {"status": ["open", "acknowledged"]},
        {"status": "resolved"},
        {"owner": "li"},
        {"severity": "low"},
        {"rule_id": str(red)},
        {"channel_id": str(channel)},
        {"subject_id": str(two)},
        {"since": (T0 + HOUR).isoformat(), "until": (T0 + 3 * HOUR).isoformat()},
    ):
        listed = await walk(client, "/v1/alerts", **params)
        rows = await export(client, "alerts", params)
        assert rows == listed[::-1], params
        assert 0 < len(rows) < 4, params


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("customers", {"tier": "Z"}, "query.tier"),
        ("customers", {"score_min": 70, "score_max": 40}, "query.score_max"),
        ("scores", {"band": "blue"}, "query.band"),
        ("scores", {"score_min": 170}, "query.score_min"),
        ("interactions", {"customer_id": "nope"}, "query.customer_id"),
        ("interactions", {"occurred_after": "2026-03-01T09:00:00"}, "query.occurred_after"),
        ("alerts", {"status": "asleep"}, "query.status.0"),
        ("alerts", {"owner": "x" * 201}, "query.owner"),
    ],
)
async def test_bad_filters_are_the_lists_422(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    kind: str,
    params: dict[str, Any],
    field: str,
) -> None:
    before = checked_out(engine)
    response = await client.get(f"/v1/exports/{kind}", params=params)
    body = assert_problem(response, 422, field)
    listed = await client.get(f"/v1/{'customers' if kind == 'scores' else kind}", params=params)
    assert body["errors"] == listed.json()["errors"]
    assert checked_out(engine) == before


@pytest.mark.parametrize("kind", ["customers", "scores"])
async def test_created_before_earlier_than_created_after_is_422(
    client: httpx.AsyncClient, kind: str
) -> None:
    params = {"created_after": T0.isoformat(), "created_before": (T0 - HOUR).isoformat()}
    response = await client.get(f"/v1/exports/{kind}", params=params)
    assert_problem(response, 422, "query.created_before")


# Streaming


async def test_more_rows_than_a_chunk_arrive_in_order_exactly_once(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "CHUNK_ROWS", 3)
    customer = await insert_customer(engine)
    # Pairs share a time, so the order within a pair is the id's.
    await insert_interactions(
        engine,
        [
            {"customer_id": customer, "kind": "visit", "occurred_at": T0 + (i // 2) * HOUR}
            for i in reversed(range(11))
        ],
    )
    listed = await walk(client, "/v1/interactions", sort="occurred_at")
    expected = [(i["occurred_at"], i["id"]) for i in listed]
    assert expected == sorted(expected)
    assert len(set(expected)) == 11
    for format_ in ("ndjson", "csv"):
        response = await client.get("/v1/exports/interactions", params={"format": format_})
        rows = ndjson_rows(response) if format_ == "ndjson" else csv_rows(response)
        assert [(r["occurred_at"], r["id"]) for r in rows] == expected


async def test_rows_are_encoded_a_chunk_at_a_time(engine: AsyncEngine) -> None:
    customer = await insert_customer(engine)
    await insert_interactions(
        engine,
        [{"customer_id": customer, "kind": "call", "occurred_at": T0 + i * HOUR} for i in range(7)],
    )
    export = kinds.interactions(InteractionFilters(customer_id=customer))
    for format_, newline, lines in (
        (ExportFormat.csv, "\r\n", [1, 3, 3, 1]),  # the header, then a piece per chunk
        (ExportFormat.ndjson, "\n", [3, 3, 1]),
    ):
        async with engine.connect() as conn:
            encoded = await stream.start(conn, export, format_, chunk_rows=3)
            pieces = [piece async for piece in encoded]
        assert [piece.decode().count(newline) for piece in pieces] == lines
        assert encoded.rows == 7


async def test_the_connection_goes_back_to_the_pool_after_the_stream(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "CHUNK_ROWS", 2)
    customer = await insert_customer(engine)
    await insert_interactions(
        engine,
        [{"customer_id": customer, "kind": "call", "occurred_at": T0 + i * HOUR} for i in range(5)],
    )
    before = checked_out(engine)
    for kind in KINDS:
        assert (await client.get(f"/v1/exports/{kind}")).status_code == 200
        assert checked_out(engine) == before, kind


# Format, headers, access


async def test_format_from_the_query_or_the_accept_header(client: httpx.AsyncClient) -> None:
    ndjson = "application/x-ndjson"
    for accept, expected in (
        (ndjson, ndjson),
        ("text/csv", "text/csv; charset=utf-8"),
        (f"text/csv;q=0.5, {ndjson};q=0.9", ndjson),
        (f"application/json, {ndjson}", ndjson),
        ("*/*", "text/csv; charset=utf-8"),
    ):
        response = await client.get("/v1/exports/alerts", headers={"Accept": accept})
        assert response.status_code == 200, accept
        assert response.headers["content-type"] == expected, accept
    response = await client.get("/v1/exports/alerts?format=csv", headers={"Accept": ndjson})
    assert response.headers["content-type"] == "text/csv; charset=utf-8"

    response = await client.get("/v1/exports/alerts", headers={"Accept": "application/json"})
    assert_problem(response, 406, "header.accept")
    response = await client.get("/v1/exports/alerts", headers={"Accept": f"{ndjson};q=0"})
    assert_problem(response, 406, "header.accept")
    assert_problem(await client.get("/v1/exports/alerts?format=xml"), 422, "query.format")


@pytest.mark.parametrize("kind", KINDS)
async def test_the_download_is_named_for_its_kind_and_format(
    client: httpx.AsyncClient, kind: str
) -> None:
    for format_ in ("csv", "ndjson"):
        response = await client.get(f"/v1/exports/{kind}", params={"format": format_})
        disposition = response.headers["content-disposition"]
        assert disposition.startswith(f'attachment; filename="{kind}-')
        assert disposition.endswith(f'.{format_}"')


@pytest.mark.parametrize("kind", KINDS)
async def test_exports_need_a_key_with_read_scope(
    anonymous: httpx.AsyncClient, client_for: KeyMaker, kind: str
) -> None:
    response = await anonymous.get(f"/v1/exports/{kind}")
    assert_problem(response, 401)
    reader = await client_for(Scope.read)
    assert (await reader.get(f"/v1/exports/{kind}")).status_code == 200


# The contract


def _parameters(schema: dict[str, Any], path: str, leave_out: set[str]) -> dict[str, Any]:
    operation = schema["paths"][path]["get"]
    return {
        p["name"]: (p["in"], p.get("required", False), p["schema"])
        for p in operation.get("parameters", [])
        if p["name"] not in leave_out
    }


@pytest.mark.parametrize(
    ("export_path", "list_path"),
    [
        ("/v1/exports/customers", "/v1/customers"),
        ("/v1/exports/scores", "/v1/customers"),
        ("/v1/exports/interactions", "/v1/interactions"),
        ("/v1/exports/alerts", "/v1/alerts"),
    ],
)
def test_exports_take_the_lists_filters(app: FastAPI, export_path: str, list_path: str) -> None:
    schema = app.openapi()
    exported = _parameters(schema, export_path, {"format"})
    assert exported == _parameters(schema, list_path, {"limit", "cursor", "sort"})
    content = schema["paths"][export_path]["get"]["responses"]["200"]["content"]
    assert set(content) == {"text/csv; charset=utf-8", "application/x-ndjson"}
    assert all(c["example"] for c in content.values())

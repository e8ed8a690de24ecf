"""Alert rules, alerts as to-dos (their state machine, notes and webhook events), and owner
handovers. Alerts are written straight to the database: the rule engine raises them elsewhere."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.alerts import service
from services.api.app import create_app
from services.core import migrations
from services.core.alerts import applies_to, parse_params
from services.core.api_keys import create_api_key
from services.core.config import Settings
from services.core.db import session_scope
from services.core.models import Alert, AlertRule, WebhookEndpoint
from services.core.models.base import new_id
from services.core.models.enums import AlertKind, AlertSubject, Scope, ValueTier
from services.core.webhooks.signing import new_secret
from tests.api.customer_rows import insert_channel, insert_customer
from tests.conftest import SECRET_KEY, KeyMaker
from tests.helpers import assert_problem, count_rows, walk

MISSING = "01970000-0000-7000-8000-000000000000"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DEFAULTS = [f"019ab000-0000-7000-8000-00000000000{i}" for i in range(1, 6)]
"""The rules the migrations write, oldest first: four on customers, the last on channels."""
RULE: dict[str, Any] = {
    "name": "沉默客户 Silent customers",
    "kind": "inactivity",
    "subject": "customer",
    "params": {"days": 30},
    "severity": "high",
}


async def create_rule(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/alert-rules", json={**RULE, **fields})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def insert_rule(engine: AsyncEngine, **fields: Any) -> uuid.UUID:
    row = {
        "id": new_id(),
        "name": "Customer turned red",
        "kind": AlertKind.band_change,
        "subject": AlertSubject.customer,
        "params": {"to": ["red"]},
        "severity": "high",
        **fields,
    }
    async with engine.begin() as conn:
        await conn.execute(insert(AlertRule), [row])
    rule_id: uuid.UUID = row["id"]
    return rule_id


async def insert_alert(
    engine: AsyncEngine, rule_id: uuid.UUID, subject_id: uuid.UUID, **fields: Any
) -> uuid.UUID:
    row = {
        "id": new_id(),
        "rule_id": rule_id,
        "subject": AlertSubject.customer,
        "subject_id": subject_id,
        "severity": "high",
        "reason": {"kind": "band_change", "params": {"to": ["red"]}, "band": "red", "score": 31.5},
        "due_at": T0 + timedelta(days=3),
        "opened_at": T0,
        **fields,
    }
    async with engine.begin() as conn:
        await conn.execute(insert(Alert), [row])
    alert_id: uuid.UUID = row["id"]
    return alert_id


async def subscribe(engine: AsyncEngine, *types: str) -> uuid.UUID:
    row: dict[str, Any] = {
        "id": new_id(),
        "url": "https://hooks.example.com/retention",
        "event_types": list(types),
        "secret": new_secret(),
    }
    async with engine.begin() as conn:
        await conn.execute(insert(WebhookEndpoint), [row])
    endpoint_id: uuid.UUID = row["id"]
    return endpoint_id


async def messages(engine: AsyncEngine) -> list[tuple[str, uuid.UUID, dict[str, Any]]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT type, subject_id, body FROM webhook_messages ORDER BY created_at, sequence"
            )
        )
        return [(r.type, r.subject_id, r.body["data"]) for r in rows]


async def alert_row(engine: AsyncEngine, alert_id: uuid.UUID) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (await conn.execute(select(Alert).where(Alert.id == alert_id))).one()
        return dict(row._mapping)


async def audit_actions(engine: AsyncEngine, resource_type: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT action FROM audit_events WHERE resource_type = :t ORDER BY id"),
            {"t": resource_type},
        )
        return list(rows.scalars())


@pytest.fixture
async def red_alert(engine: AsyncEngine) -> dict[str, uuid.UUID]:
    """An open alert of a band rule on one customer of one channel."""
    channel = await insert_channel(engine)
    customer = await insert_customer(engine, channel_id=channel)
    rule = await insert_rule(engine)
    alert = await insert_alert(engine, rule, customer, channel_id=channel, owner="li")
    return {"alert": alert, "rule": rule, "customer": customer, "channel": channel}


# Rules


async def test_default_rules_after_migration(
    server_urls: tuple[str, str], make_database: Callable[[], Awaitable[str]]
) -> None:
    url = await make_database()
    await asyncio.to_thread(migrations.upgrade, url)
    settings = Settings(
        database_url=url,
        redis_url=server_urls[1],
        queue_name=f"alerts-{uuid.uuid4().hex[:8]}",
        secret_key=SecretStr(SECRET_KEY),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with session_scope(app.state.sessionmaker) as session:
            key = await create_api_key(session, "defaults", {Scope.read})
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            headers={"Authorization": f"Bearer {key.key}"},
        ) as reader:
            rules = await walk(reader, "/v1/alert-rules", limit=2)
    assert [r["id"] for r in rules] == DEFAULTS
    assert [(r["name"], r["kind"], r["subject"], r["params"], r["tiers"]) for r in rules] == [
        ("Customer turned red", "band_change", "customer", {"to": ["red"]}, []),
        (
            "A-tier customer silent for 60 days",
            "inactivity",
            "customer",
            {"days": 60, "of": "order"},
            ["A"],
        ),
        ("Three complaints in 90 days", "complaints", "customer", {"count": 3}, []),
        ("Ticket SLA breached", "sla_breach", "customer", {"count": 1}, []),
        ("Channel turned red", "band_change", "channel", {"to": ["red"]}, []),
    ]
    for rule in rules:
        assert (rule["active"], rule["auto_resolve"], rule["due_hours"]) == (True, True, 72)
        assert rule["archived_at"] is None
        kind, subject = AlertKind(rule["kind"]), AlertSubject(rule["subject"])
        assert applies_to(kind, subject)
        assert parse_params(kind, rule["params"]).model_dump() == rule["params"]


async def test_rule_create_get_update_archive(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    channel = await insert_channel(engine)
    created = await create_rule(
        client, tiers=["A", "B"], channel_id=str(channel), tag="vip", due_hours=48
    )
    assert created["params"] == {"days": 30, "of": "interaction"}, "defaults are filled in"
    assert (created["tiers"], created["channel_id"], created["tag"]) == (
        ["A", "B"],
        str(channel),
        "vip",
    )
    assert (created["active"], created["auto_resolve"], created["version"]) == (True, True, 1)
    url = f"/v1/alert-rules/{created['id']}"

    got = await client.get(url)
    assert got.headers["etag"] == '"1"'
    assert got.json() == created

    patched = await client.patch(
        url,
        json={"params": {"days": 45, "of": "order"}, "tag": None, "severity": "critical"},
        headers={"If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.text
    assert patched.headers["etag"] == '"2"'
    body = patched.json()
    assert (body["params"], body["tag"], body["severity"]) == (
        {"days": 45, "of": "order"},
        None,
        "critical",
    )
    assert (body["kind"], body["tiers"], body["version"]) == ("inactivity", ["A", "B"], 2)

    assert (await client.delete(url)).status_code == 204
    archived = (await client.get(url)).json()
    assert archived["archived_at"] is not None
    assert (archived["active"], archived["version"]) == (False, 3)
    assert (await client.delete(url)).status_code == 204, "archiving again is a no-op"
    assert (await client.get(url)).json()["version"] == 3
    assert [r["id"] for r in await walk(client, "/v1/alert-rules")] == DEFAULTS
    listed = await walk(client, "/v1/alert-rules", include_archived=True)
    assert [r["id"] for r in listed] == [*DEFAULTS, created["id"]]
    assert_problem(await client.patch(url, json={"name": "again"}), 409)

    events = (await client.get("/v1/audit-events", params={"resource_id": created["id"]})).json()[
        "items"
    ]
    assert [e["action"] for e in events] == ["archive", "update", "create"]
    assert events[1]["before"]["params"] == {"days": 30, "of": "interaction"}
    assert events[1]["after"]["params"] == {"days": 45, "of": "order"}
    assert {e["resource_type"] for e in events} == {"alert_rule"}


async def test_rule_list_filters(client: httpx.AsyncClient) -> None:
    silent = await create_rule(client)
    red = await create_rule(
        client, name="Channel red", kind="band_change", subject="channel", params={"to": ["red"]}
    )
    paused = await create_rule(
        client, name="Complaints", kind="complaints", params={"count": 2}, active=False
    )
    archived = await create_rule(client, name="Old")
    await client.delete(f"/v1/alert-rules/{archived['id']}")

    async def ids(**params: Any) -> list[str]:
        return [r["id"] for r in await walk(client, "/v1/alert-rules", limit=1, **params)]

    assert await ids() == [*DEFAULTS, silent["id"], red["id"], paused["id"]]
    assert await ids(subject="channel") == [DEFAULTS[4], red["id"]]
    assert await ids(subject="customer") == [*DEFAULTS[:4], silent["id"], paused["id"]]
    assert await ids(kind="complaints") == [DEFAULTS[2], paused["id"]]
    assert await ids(kind="inactivity") == [DEFAULTS[1], silent["id"]]
    assert await ids(active=False) == [paused["id"]]
    assert await ids(active=False, include_archived=True) == [paused["id"], archived["id"]]
    assert_problem(
        await client.get("/v1/alert-rules", params={"kind": "weather"}), 422, "query.kind"
    )


async def test_rule_idempotent_create(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    headers = {"Idempotency-Key": "rule-1"}
    first = await client.post("/v1/alert-rules", json=RULE, headers=headers)
    again = await client.post("/v1/alert-rules", json=RULE, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == f"/v1/alert-rules/{first.json()['id']}"
    assert await count_rows(engine, "alert_rules") == len(DEFAULTS) + 1


BAD_RULES: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"kind": "weather"}, ("body.kind",)),
    ({"params": {"days": 0}}, ("body.params.days",)),
    ({"params": {"days": 3651}}, ("body.params.days",)),
    ({"params": {"days": "a month"}}, ("body.params.days",)),
    ({"params": {}}, ("body.params.days",)),
    ({"params": {"days": 30, "of": "visit"}}, ("body.params.of",)),
    ({"params": {"days": 30, "hours": 2}}, ("body.params.hours",)),
    ({"kind": "band_change", "params": {"to": ["blue"]}}, ("body.params.to.0",)),
    ({"kind": "band_change", "params": {"to": []}}, ("body.params.to",)),
    ({"kind": "order_value_drop", "params": {"percent": 120}}, ("body.params.percent",)),
    ({"params": [30]}, ("body.params",)),
    ({"subject": "channel"}, ("body.kind",)),
    (
        {"subject": "channel", "kind": "complaints", "params": {"count": 0}},
        ("body.kind", "body.params.count"),
    ),
    (
        {"subject": "channel", "kind": "score_below", "params": {"score": 40}, "tiers": ["A"]},
        ("body.tiers",),
    ),
    ({"channel_id": MISSING}, ("body.channel_id",)),
    ({"channel_id": "east"}, ("body.channel_id",)),
    ({"colour": "red"}, ("body.colour",)),
    ({"severity": 5}, ("body.severity",)),
    ({"severity": "urgent"}, ("body.severity",)),
    ({"tiers": ["D"]}, ("body.tiers.0",)),
    ({"tiers": ["A", "A"]}, ("body.tiers",)),
    ({"tiers": "A"}, ("body.tiers",)),
    ({"due_hours": 0}, ("body.due_hours",)),
    ({"due_hours": 2161}, ("body.due_hours",)),
    ({"due_hours": "soon"}, ("body.due_hours",)),
    ({"active": "maybe"}, ("body.active",)),
    ({"name": ""}, ("body.name",)),
    ({"tag": "x" * 51}, ("body.tag",)),
]


@pytest.mark.parametrize(("fields", "named"), BAD_RULES)
async def test_bad_rule_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, fields: dict[str, Any], named: tuple[str, ...]
) -> None:
    assert_problem(await client.post("/v1/alert-rules", json={**RULE, **fields}), 422, *named)
    assert await count_rows(engine, "alert_rules") == len(DEFAULTS)
    assert await count_rows(engine, "audit_events") == 0


async def test_rule_without_required_fields(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    for missing in ("name", "kind", "subject", "params", "severity"):
        body = {k: v for k, v in RULE.items() if k != missing}
        assert_problem(await client.post("/v1/alert-rules", json=body), 422, f"body.{missing}")
    malformed = await client.post(
        "/v1/alert-rules", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert_problem(malformed, 400)
    assert await count_rows(engine, "alert_rules") == len(DEFAULTS)
    assert await count_rows(engine, "audit_events") == 0


@given(
    days=st.integers(-10_000, 10_000),
    of=st.sampled_from(["interaction", "order", "visit", ""]),
)
def test_params_problems_are_named_under_body_params(days: int, of: str) -> None:
    params, errors = service.params_errors(AlertKind.inactivity, {"days": days, "of": of})
    expected = [
        *(["body.params.days"] if not 1 <= days <= 3650 else []),
        *(["body.params.of"] if of not in ("interaction", "order") else []),
    ]
    assert [e.field for e in errors] == expected
    assert params == ({} if expected else {"days": days, "of": of})


async def test_bad_rule_patch_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    rule = await create_rule(client)
    url = f"/v1/alert-rules/{rule['id']}"
    cases: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        ({"kind": "complaints"}, ("body.kind",)),
        ({"subject": "channel"}, ("body.subject",)),
        ({"kind": "inactivity"}, ("body.kind",)),
        ({"params": {"count": 3}}, ("body.params.days", "body.params.count")),
        ({"params": {"days": -1}}, ("body.params.days",)),
        ({"params": None}, ("body.params",)),
        ({"name": None}, ("body.name",)),
        ({"channel_id": MISSING}, ("body.channel_id",)),
        ({"due_hours": 9999}, ("body.due_hours",)),
        ({"colour": "red"}, ("body.colour",)),
    ]
    for body, named in cases:
        assert_problem(await client.patch(url, json=body), 422, *named)
    stale = await client.patch(url, json={"name": "x"}, headers={"If-Match": '"7"'})
    assert assert_problem(stale, 412)["current_etag"] == '"1"'
    assert_problem(await client.patch(f"/v1/alert-rules/{MISSING}", json={"name": "x"}), 404)
    assert (await client.get(url)).json() == rule
    assert await audit_actions(engine, "alert_rule") == ["create"]


async def test_channel_rule_accepts_score_kinds_and_its_channel(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    channel = await insert_channel(engine)
    for kind, params in (
        ("score_below", {"score": 40}),
        ("score_drop", {"points": 10.5}),
        ("band_change", {"to": ["yellow", "red"]}),
    ):
        rule = await create_rule(
            client, subject="channel", kind=kind, params=params, channel_id=str(channel)
        )
        assert (rule["params"], rule["channel_id"]) == (params, str(channel))
    channel_rule = rule["id"]
    assert_problem(
        await client.patch(f"/v1/alert-rules/{channel_rule}", json={"tiers": ["A"]}),
        422,
        "body.tiers",
    )


# Alerts


async def test_alert_list_filters(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    east, west = await insert_channel(engine), await insert_channel(engine, name="West")
    c1 = await insert_customer(engine, channel_id=east)
    c2 = await insert_customer(engine, channel_id=west)
    band = await insert_rule(engine)
    silent = await insert_rule(
        engine, name="Silent", kind=AlertKind.inactivity, params={"days": 30, "of": "order"}
    )
    channel_red = await insert_rule(engine, name="Channel red", subject=AlertSubject.channel)
    hour = timedelta(hours=1)
    a = await insert_alert(engine, band, c1, channel_id=east, owner="li", opened_at=T0)
    b = await insert_alert(
        engine, silent, c1, channel_id=east, status="acknowledged", opened_at=T0 + hour
    )
    c = await insert_alert(
        engine,
        band,
        c2,
        channel_id=west,
        owner="li",
        status="resolved",
        severity="low",
        opened_at=T0 + 2 * hour,
    )
    d = await insert_alert(
        engine,
        channel_red,
        east,
        subject=AlertSubject.channel,
        channel_id=east,
        status="dismissed",
        owner="wang",
        opened_at=T0 + 3 * hour,
    )
    e = await insert_alert(engine, silent, c2, channel_id=west, opened_at=T0 + 4 * hour)

    async def ids(**params: Any) -> list[str]:
        return [x["id"] for x in await walk(client, "/v1/alerts", limit=2, **params)]

    def named(*alerts: uuid.UUID) -> list[str]:
        return [str(x) for x in alerts]

    assert await ids() == named(e, d, c, b, a), "newest opened first"
    assert await ids(status="open") == named(e, a)
    assert await ids(status=["open", "acknowledged"]) == named(e, b, a)
    assert await ids(owner="li") == named(c, a)
    assert await ids(severity="low") == named(c)
    assert await ids(channel_id=str(east)) == named(d, b, a)
    assert await ids(rule_id=str(silent)) == named(e, b)
    assert await ids(subject="channel") == named(d)
    assert await ids(subject_id=str(c1)) == named(b, a)
    since, until = (T0 + hour).isoformat(), (T0 + 3 * hour).isoformat()
    assert await ids(since=since, until=until) == named(c, b)
    assert await ids(status="open", channel_id=str(west)) == named(e)

    first = (await client.get("/v1/alerts", params={"rule_id": str(band)})).json()["items"]
    assert [x["rule_name"] for x in first] == ["Customer turned red"] * 2
    assert first[1]["reason"]["score"] == 31.5
    assert_problem(
        await client.get("/v1/alerts", params={"status": "closed"}), 422, "query.status.0"
    )
    assert_problem(
        await client.get("/v1/alerts", params={"since": "2026-03-01T09:00:00"}), 422, "query.since"
    )


async def test_get_alert_with_notes(
    client: httpx.AsyncClient, red_alert: dict[str, uuid.UUID]
) -> None:
    url = f"/v1/alerts/{red_alert['alert']}"
    got = await client.get(url)
    assert got.status_code == 200
    assert got.headers["etag"] == '"1"'
    alert = got.json()
    assert (alert["status"], alert["owner"], alert["notes"]) == ("open", "li", [])
    assert (alert["subject_id"], alert["rule_name"]) == (
        str(red_alert["customer"]),
        "Customer turned red",
    )
    for body in ("第一次联系 first call", "  second  "):
        created = await client.post(f"{url}/notes", json={"body": body})
        assert created.status_code == 201, created.text
        assert created.headers["location"] == url
    detail = (await client.get(url)).json()
    assert [(n["body"], n["author"]) for n in detail["notes"]] == [
        ("第一次联系 first call", "test"),
        ("second", "test"),
    ]
    assert detail["version"] == 3, "a note changes what GET shows"
    assert_problem(await client.get(f"/v1/alerts/{MISSING}"), 404)


async def test_bad_notes_write_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, red_alert: dict[str, uuid.UUID]
) -> None:
    url = f"/v1/alerts/{red_alert['alert']}/notes"
    for body, field in (
        ({"body": ""}, "body.body"),
        ({"body": "   "}, "body.body"),
        ({"body": "x" * 5001}, "body.body"),
        ({}, "body.body"),
        ({"body": "ok", "pinned": True}, "body.pinned"),
    ):
        assert_problem(await client.post(url, json=body), 422, field)
    assert_problem(await client.post(url, json={"body": "x"}, headers={"If-Match": '"2"'}), 412)
    assert_problem(await client.post(f"/v1/alerts/{MISSING}/notes", json={"body": "x"}), 404)
    assert (await client.post(url, json={"body": "x" * 5000})).status_code == 201
    assert await count_rows(engine, "alert_notes") == 1
    assert await audit_actions(engine, "alert") == ["note"]


async def test_acknowledge_then_resolve(
    client: httpx.AsyncClient, engine: AsyncEngine, red_alert: dict[str, uuid.UUID]
) -> None:
    url = f"/v1/alerts/{red_alert['alert']}"
    acked = await client.post(f"{url}/acknowledge", headers={"If-Match": '"1"'})
    assert acked.status_code == 200, acked.text
    assert acked.headers["etag"] == '"2"'
    body = acked.json()
    assert (body["status"], body["acknowledged_by"], body["version"]) == ("acknowledged", "test", 2)
    assert body["acknowledged_at"] is not None
    assert body["closed_at"] is None

    resolved = await client.post(f"{url}/resolve", json={"note": "客户已回复 Replied"})
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert (body["status"], body["closed_by"], body["version"]) == ("resolved", "test", 3)
    assert body["closed_at"] is not None
    assert body["acknowledged_by"] == "test", "acknowledgement is kept"
    assert [n["body"] for n in body["notes"]] == ["客户已回复 Replied"]
    assert (await client.get(url)).json() == body

    events = (
        await client.get("/v1/audit-events", params={"resource_id": str(red_alert["alert"])})
    ).json()["items"]
    assert [e["action"] for e in events] == ["resolve", "acknowledge"]
    assert (events[0]["before"]["status"], events[0]["after"]["status"]) == (
        "acknowledged",
        "resolved",
    )
    assert events[0]["after"]["note"] == "客户已回复 Replied"


TRANSITIONS = {
    ("open", "acknowledge"): "acknowledged",
    ("open", "resolve"): "resolved",
    ("open", "dismiss"): "dismissed",
    ("acknowledged", "acknowledge"): None,
    ("acknowledged", "resolve"): "resolved",
    ("acknowledged", "dismiss"): "dismissed",
    ("resolved", "acknowledge"): None,
    ("resolved", "resolve"): None,
    ("resolved", "dismiss"): None,
    ("dismissed", "acknowledge"): None,
    ("dismissed", "resolve"): None,
    ("dismissed", "dismiss"): None,
}


@pytest.mark.parametrize(("start", "action"), list(TRANSITIONS))
async def test_state_machine(
    client: httpx.AsyncClient, engine: AsyncEngine, start: str, action: str
) -> None:
    customer = await insert_customer(engine)
    alert = await insert_alert(engine, await insert_rule(engine), customer, status=start)
    response = await client.post(f"/v1/alerts/{alert}/{action}")
    row = await alert_row(engine, alert)
    expected = TRANSITIONS[(start, action)]
    if expected is None:
        problem = assert_problem(response, 409)
        assert problem["status"] == 409
        assert start in problem["detail"]
        assert problem["current_status"] == start
        assert (row["status"], row["version"]) == (start, 1)
        assert (row["closed_at"], row["closed_by"]) == (None, None)
        assert await count_rows(engine, "audit_events") == 0
    else:
        assert response.status_code == 200, response.text
        assert (row["status"], row["version"]) == (expected, 2)
        closing = expected in ("resolved", "dismissed")
        assert (row["closed_by"] == "test") is closing
        assert (row["closed_at"] is not None) is closing
        assert (row["acknowledged_by"] == "test") is (expected == "acknowledged")
        assert await audit_actions(engine, "alert") == [action]


async def test_actions_honour_if_match(
    client: httpx.AsyncClient, engine: AsyncEngine, red_alert: dict[str, uuid.UUID]
) -> None:
    url = f"/v1/alerts/{red_alert['alert']}"
    for action in ("acknowledge", "resolve", "dismiss"):
        stale = await client.post(f"{url}/{action}", headers={"If-Match": '"0"'})
        assert assert_problem(stale, 412)["current_etag"] == '"1"'
    assert_problem(await client.patch(url, json={"owner": "x"}, headers={"If-Match": '"2"'}), 412)
    row = await alert_row(engine, red_alert["alert"])
    assert (row["status"], row["owner"], row["version"]) == ("open", "li", 1)
    dismissed = await client.post(f"{url}/dismiss", headers={"If-Match": '"1", "5"'})
    assert dismissed.json()["status"] == "dismissed"
    assert_problem(await client.post(f"/v1/alerts/{MISSING}/acknowledge"), 404)


async def test_patch_alert(
    client: httpx.AsyncClient, engine: AsyncEngine, red_alert: dict[str, uuid.UUID]
) -> None:
    url = f"/v1/alerts/{red_alert['alert']}"
    due = "2026-03-10T17:00:00+08:00"
    patched = await client.patch(url, json={"owner": "wang.fang", "due_at": due})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["owner"] == "wang.fang"
    assert datetime.fromisoformat(body["due_at"]) == datetime(2026, 3, 10, 9, tzinfo=UTC)
    assert (body["version"], patched.headers["etag"]) == (2, '"2"')

    same = await client.patch(url, json={"owner": "wang.fang"})
    assert same.json()["version"] == 2, "nothing changed, nothing written"
    cleared = await client.patch(url, json={"owner": None})
    assert (cleared.json()["owner"], cleared.json()["version"]) == (None, 3)

    for bad, field in (
        ({"due_at": None}, "body.due_at"),
        ({"due_at": "2026-03-10T17:00:00"}, "body.due_at"),
        ({"owner": ""}, "body.owner"),
        ({"status": "resolved"}, "body.status"),
    ):
        assert_problem(await client.patch(url, json=bad), 422, field)
    assert await audit_actions(engine, "alert") == ["update", "update"]

    await client.post(f"{url}/resolve")
    assert_problem(await client.patch(url, json={"owner": "li"}), 409)
    assert (await alert_row(engine, red_alert["alert"]))["owner"] is None


# Webhooks


async def test_actions_publish_webhook_events(
    client: httpx.AsyncClient, engine: AsyncEngine, red_alert: dict[str, uuid.UUID]
) -> None:
    await subscribe(engine, "*")
    alert_id, customer = red_alert["alert"], red_alert["customer"]
    url = f"/v1/alerts/{alert_id}"
    await client.patch(url, json={"owner": "wang"})
    await client.post(f"{url}/acknowledge")
    await client.post(f"{url}/notes", json={"body": "called"})
    await client.post(f"{url}/resolve")
    assert_problem(await client.post(f"{url}/dismiss"), 409)
    other = await insert_alert(engine, red_alert["rule"], await insert_customer(engine))
    await client.post(f"/v1/alerts/{other}/dismiss", json={"note": "duplicate"})

    sent = await messages(engine)
    assert [(t, s) for t, s, _ in sent] == [
        ("alert.updated", customer),
        ("alert.updated", customer),
        ("alert.updated", customer),
        ("alert.resolved", customer),
        ("alert.updated", (await alert_row(engine, other))["subject_id"]),
    ]
    assert [d["status"] for _, _, d in sent] == [
        "open",
        "acknowledged",
        "acknowledged",
        "resolved",
        "dismissed",
    ]
    assert [d["sequence"] for _, _, d in sent] == [1, 2, 3, 4, 1], "numbered per subject"
    last_own = sent[3][2]
    assert {k: v for k, v in last_own.items() if k != "sequence"} == {
        "alert_id": str(alert_id),
        "rule_id": str(red_alert["rule"]),
        "rule_name": "Customer turned red",
        "subject": "customer",
        "subject_id": str(customer),
        "severity": "high",
        "status": "resolved",
        "reason": {"kind": "band_change", "params": {"to": ["red"]}, "band": "red", "score": 31.5},
        "owner": "wang",
        "due_at": (T0 + timedelta(days=3)).isoformat(),
        "link": f"/v1/alerts/{alert_id}",
    }
    assert await count_rows(engine, "webhook_deliveries") == 5


async def test_no_webhook_messages_without_subscribers(
    client: httpx.AsyncClient, engine: AsyncEngine, red_alert: dict[str, uuid.UUID]
) -> None:
    await subscribe(engine, "customer.health.changed")
    url = f"/v1/alerts/{red_alert['alert']}"
    await client.post(f"{url}/acknowledge")
    await client.post(f"{url}/notes", json={"body": "x"})
    resolved = await client.post(f"{url}/resolve")
    assert resolved.status_code == 200
    assert await count_rows(engine, "webhook_messages") == 0
    assert await count_rows(engine, "webhook_deliveries") == 0
    assert await audit_actions(engine, "alert") == ["acknowledge", "note", "resolve"]


# Owners


@pytest.fixture
async def team(engine: AsyncEngine) -> dict[str, uuid.UUID]:
    """What li owns, and a little of what zhao owns, to hand over in different ways."""
    ids: dict[str, uuid.UUID] = {}
    ids["east"] = await insert_channel(engine, owner="li")
    ids["west"] = await insert_channel(engine, name="West", owner="li")
    ids["north"] = await insert_channel(engine, name="North", owner="zhao")
    customers: dict[str, dict[str, Any]] = {
        "c_east_a_vip": {"channel_id": ids["east"], "value_tier": ValueTier.A, "tags": ["vip"]},
        "c_west_b": {"channel_id": ids["west"], "value_tier": ValueTier.B},
        "c_none_a": {"value_tier": ValueTier.A},
        "c_east_a_zhao": {"channel_id": ids["east"], "value_tier": ValueTier.A, "owner": "zhao"},
    }
    for name, fields in customers.items():
        ids[name] = await insert_customer(engine, **{"owner": "li", **fields})
    rule = await insert_rule(engine)
    channel_rule = await insert_rule(engine, subject=AlertSubject.channel)
    for name, subject, status, owner in (
        ("a_east_vip_open", "c_east_a_vip", "open", "li"),
        ("a_west_ack", "c_west_b", "acknowledged", "li"),
        ("a_none_a_open", "c_none_a", "open", "li"),
        ("a_east_vip_resolved", "c_east_a_vip", "resolved", "li"),
        ("a_west_dismissed", "c_west_b", "dismissed", "li"),
        ("a_zhao_open", "c_east_a_zhao", "open", "zhao"),
    ):
        customer = ids[subject]
        async with engine.connect() as conn:
            channel = (
                await conn.execute(
                    text("SELECT channel_id FROM customers WHERE id = :c"), {"c": customer}
                )
            ).scalar_one()
        ids[name] = await insert_alert(
            engine, rule, customer, channel_id=channel, status=status, owner=owner
        )
    ids["a_channel_west"] = await insert_alert(
        engine,
        channel_rule,
        ids["west"],
        subject=AlertSubject.channel,
        channel_id=ids["west"],
        owner="li",
    )
    return ids


async def owners(engine: AsyncEngine, table: str) -> dict[uuid.UUID, tuple[str | None, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT id, owner, version FROM {table}"))
        return {r.id: (r.owner, r.version) for r in rows}


HANDOVERS: list[tuple[dict[str, Any], set[str]]] = [
    (
        {},
        {
            "c_east_a_vip",
            "c_west_b",
            "c_none_a",
            "east",
            "west",
            "a_east_vip_open",
            "a_west_ack",
            "a_none_a_open",
            "a_channel_west",
        },
    ),
    ({"include": ["channels"]}, {"east", "west"}),
    (
        {"include": ["customers", "alerts"]},
        {
            "c_east_a_vip",
            "c_west_b",
            "c_none_a",
            "a_east_vip_open",
            "a_west_ack",
            "a_none_a_open",
            "a_channel_west",
        },
    ),
    ({"channel_id": "west"}, {"c_west_b", "west", "a_west_ack", "a_channel_west"}),
    (
        {"tier": "A", "include": ["customers", "alerts"]},
        {"c_east_a_vip", "c_none_a", "a_east_vip_open", "a_none_a_open"},
    ),
    ({"tag": "vip", "include": ["customers"]}, {"c_east_a_vip"}),
    (
        {"tier": "A", "channel_id": "east", "include": ["customers", "alerts"]},
        {"c_east_a_vip", "a_east_vip_open"},
    ),
    ({"from_owner": "nobody"}, set()),
]


@pytest.mark.parametrize(("request_fields", "moved"), HANDOVERS)
async def test_reassign_moves_exactly_the_matching_rows(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    team: dict[str, uuid.UUID],
    request_fields: dict[str, Any],
    moved: set[str],
) -> None:
    await subscribe(engine, "*")
    fields = dict(request_fields)
    if "channel_id" in fields:
        fields["channel_id"] = str(team[fields["channel_id"]])
    before = {t: await owners(engine, t) for t in ("customers", "channels", "alerts")}
    body = {"from_owner": "li", "to_owner": "wang", **fields}
    response = await client.post("/v1/owners/reassign", json=body)
    assert response.status_code == 200, response.text

    moved_ids = {team[name] for name in moved}
    for table in ("customers", "channels", "alerts"):
        after = await owners(engine, table)
        for row_id, (owner, version) in after.items():
            was_owner, was_version = before[table][row_id]
            if row_id in moved_ids:
                assert (was_owner, owner, version) == ("li", "wang", was_version + 1)
            else:
                assert (owner, version) == (was_owner, was_version)
    counts = {
        kind: sum(1 for name in moved if name.startswith(prefix))
        for kind, prefix in (("customers", "c_"), ("alerts", "a_"))
    }
    counts["channels"] = len(moved & {"east", "west"})
    assert response.json() == counts

    sent = await messages(engine)
    assert sorted(d["alert_id"] for _, _, d in sent) == sorted(
        str(team[n]) for n in moved if n.startswith("a_")
    )
    assert all(t == "alert.updated" and d["owner"] == "wang" for t, _, d in sent)
    async with engine.connect() as conn:
        audit = (await conn.execute(text("SELECT * FROM audit_events"))).all()
    assert len(audit) == 1
    assert (audit[0].action, audit[0].resource_type, audit[0].actor_name) == (
        "reassign",
        "owner",
        "test",
    )
    assert audit[0].before == {"owner": body["from_owner"]}
    assert (audit[0].after["owner"], audit[0].after["moved"]) == ("wang", counts)


async def test_bad_reassign_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, team: dict[str, uuid.UUID]
) -> None:
    before = {t: await owners(engine, t) for t in ("customers", "channels", "alerts")}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"to_owner": "li"}, "body.to_owner"),
        ({"to_owner": " li "}, "body.to_owner"),
        ({"tier": "A"}, "body.include"),
        ({"tag": "vip", "include": ["channels"]}, "body.include"),
        ({"channel_id": MISSING}, "body.channel_id"),
        ({"include": []}, "body.include"),
        ({"include": ["tickets"]}, "body.include.0"),
        ({"include": ["alerts", "alerts"]}, "body.include"),
        ({"tier": "Z", "include": ["customers"]}, "body.tier"),
        ({"to_owner": ""}, "body.to_owner"),
        ({"region": "east"}, "body.region"),
    ]
    for fields, field in cases:
        body = {"from_owner": "li", "to_owner": "wang", **fields}
        assert_problem(await client.post("/v1/owners/reassign", json=body), 422, field)
    assert_problem(
        await client.post("/v1/owners/reassign", json={"to_owner": "x"}), 422, "body.from_owner"
    )
    after = {t: await owners(engine, t) for t in ("customers", "channels", "alerts")}
    assert after == before
    assert await count_rows(engine, "audit_events") == 0


# Access


async def test_scopes(client_for: KeyMaker, red_alert: dict[str, uuid.UUID]) -> None:
    reader = await client_for(Scope.read)
    writer = await client_for(Scope.write)
    alert = f"/v1/alerts/{red_alert['alert']}"
    assert (await reader.get("/v1/alert-rules")).status_code == 200
    assert (await reader.get("/v1/alerts")).status_code == 200
    assert (await reader.get(alert)).status_code == 200
    assert_problem(await reader.post("/v1/alert-rules", json=RULE), 403)
    assert_problem(await reader.post(f"{alert}/acknowledge"), 403)
    assert_problem(await reader.post(f"{alert}/notes", json={"body": "x"}), 403)
    handover = {"from_owner": "li", "to_owner": "wang"}
    assert_problem(await writer.post("/v1/owners/reassign", json=handover), 403)
    assert (await writer.post(f"{alert}/acknowledge")).status_code == 200


async def test_missing_key_is_401(anonymous: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/v1/alert-rules"),
        ("POST", "/v1/alert-rules"),
        ("GET", "/v1/alerts"),
        ("GET", f"/v1/alerts/{MISSING}"),
        ("POST", f"/v1/alerts/{MISSING}/resolve"),
        ("POST", "/v1/owners/reassign"),
    ):
        assert_problem(await anonymous.request(method, path, json={}), 401)

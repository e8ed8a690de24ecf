"""The /v1/webhooks API: endpoints, secrets, test events, the delivery log and resending."""

import base64
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.api.webhooks.service import check_url
from services.core.config import Settings
from services.core.errors import InvalidInput
from services.core.models.enums import Scope
from services.core.webhooks.catalogue import CATALOGUE_VERSION, EVENT_TYPES
from services.scorer.jobs.webhooks import deliver
from tests.conftest import BOX, KeyMaker
from tests.helpers import assert_problem, count_rows, walk
from tests.receiver import ReceivedRequest, Receiver

URL = "http://127.0.0.1:9/hooks"  # resolvable without DNS; the tests never send to it
METADATA_URL = "http://169.254.169.254/latest/meta-data/"
MISSING = "01970000-0000-7000-8000-000000000000"


async def make_webhook(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"url": URL, "event_types": ["alert.opened"], **fields}
    response = await client.post("/v1/webhooks", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def stored(engine: AsyncEngine, endpoint_id: str) -> Any:
    async with engine.connect() as conn:
        query = text("SELECT * FROM webhook_endpoints WHERE id = :id")
        return (await conn.execute(query, {"id": endpoint_id})).one()


async def execute(engine: AsyncEngine, sql: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


async def insert_delivery(
    engine: AsyncEngine,
    endpoint_id: str,
    created_at: datetime,
    *,
    status: str = "failed",
    event_type: str = "alert.opened",
    attempts: tuple[dict[str, Any], ...] = (),
    next_attempt_at: datetime | None = None,
) -> dict[str, Any]:
    """A message and its delivery to the endpoint, with these attempts, as the worker leaves
    them; returns the delivery's columns."""
    message_id = f"msg_{uuid.uuid4().hex}"
    body = {"type": event_type, "timestamp": created_at.isoformat(), "data": {}}
    last = attempts[-1] if attempts else {}
    delivery = {
        "id": uuid.uuid4(),
        "message_id": message_id,
        "endpoint_id": uuid.UUID(endpoint_id),
        "status": status,
        "attempts": len(attempts),
        "next_attempt_at": next_attempt_at,
        "last_status_code": last.get("status_code"),
        "last_error": last.get("error"),
        "created_at": created_at,
        "finished_at": None if status == "pending" else created_at + timedelta(hours=1),
    }
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO webhook_messages (id, type, subject_id, sequence, body, created_at) "
                "VALUES (:id, :type, NULL, 1, CAST(:body AS jsonb), :at)"
            ),
            {
                "id": message_id,
                "type": event_type,
                "body": orjson.dumps(body).decode(),
                "at": created_at,
            },
        )
        await conn.execute(
            text(
                "INSERT INTO webhook_deliveries (id, message_id, endpoint_id, status, attempts, "
                "next_attempt_at, last_status_code, last_error, created_at, finished_at) VALUES "
                "(:id, :message_id, :endpoint_id, :status, :attempts, :next_attempt_at, "
                ":last_status_code, :last_error, :created_at, :finished_at)"
            ),
            delivery,
        )
        for attempt in attempts:
            await conn.execute(
                text(
                    "INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, "
                    "latency_ms, error, response_excerpt) VALUES (:delivery_id, :attempted_at, "
                    ":status_code, :latency_ms, :error, :response_excerpt)"
                ),
                {"delivery_id": delivery["id"], **attempt},
            )
    return delivery


def attempt(at: datetime, status_code: int | None, error: str | None = None) -> dict[str, Any]:
    return {
        "attempted_at": at,
        "status_code": status_code,
        "latency_ms": 12.5,
        "error": error,
        "response_excerpt": None if status_code is None else f"answer {status_code}",
    }


def at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


async def deliveries(engine: AsyncEngine, endpoint_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        query = text("SELECT * FROM webhook_deliveries WHERE endpoint_id = :e")
        return {str(r.id): r for r in (await conn.execute(query, {"e": endpoint_id})).all()}


# Endpoints: create, read, list, update, delete.


async def test_event_type_catalogue(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/webhooks/event-types")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == CATALOGUE_VERSION
    assert body["any"] == "*"
    assert {t["type"]: t["description"] for t in body["event_types"]} == EVENT_TYPES


async def test_create_get_list_patch_delete(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    response = await client.post(
        "/v1/webhooks",
        json={"url": URL, "event_types": ["alert.opened", "*"], "description": "CRM 华东"},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/v1/webhooks/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert created["active"] is True
    assert created["event_types"] == ["alert.opened", "*"]
    assert created["description"] == "CRM 华东"
    assert created["version"] == 1
    assert created["disabled_at"] is None
    assert created["failing_since"] is None
    assert created["previous_secret_valid"] is False
    assert created["previous_secret_expires_at"] is None

    url = f"/v1/webhooks/{created['id']}"
    got = await client.get(url)
    assert got.status_code == 200
    assert got.headers["etag"] == '"1"'
    without_secret = {k: v for k, v in created.items() if k != "secret"}
    assert got.json() == without_secret
    listed = await walk(client, "/v1/webhooks")
    assert listed == [without_secret]

    patched = await client.patch(
        url,
        json={"event_types": ["webhook.test"], "description": None, "active": False},
        headers={"If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.text
    assert patched.headers["etag"] == '"2"'
    body = patched.json()
    assert body["event_types"] == ["webhook.test"]
    assert body["description"] is None
    assert body["active"] is False
    assert body["version"] == 2
    assert (await client.get(url)).json() == body

    assert (await client.delete(url)).status_code == 204
    assert_problem(await client.get(url), 404)
    assert_problem(await client.delete(url), 404)
    assert await count_rows(engine, "webhook_endpoints") == 0
    actions = await _audit_actions(engine, created["id"])
    assert actions == ["create", "update", "delete"]


async def _audit_actions(engine: AsyncEngine, resource_id: str) -> list[str]:
    async with engine.connect() as conn:
        query = text("SELECT action FROM audit_events WHERE resource_id = :r ORDER BY id")
        return list((await conn.execute(query, {"r": resource_id})).scalars())


async def test_filters(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    on = await make_webhook(client)
    off = await make_webhook(client, active=False)
    disabled = await make_webhook(client)
    await execute(
        engine,
        "UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = 'gone' WHERE id = :id",
        id=disabled["id"],
    )

    async def ids(**params: Any) -> set[str]:
        return {w["id"] for w in await walk(client, "/v1/webhooks", **params)}

    assert await ids() == {on["id"], off["id"], disabled["id"]}
    assert await ids(active=True) == {on["id"], disabled["id"]}
    assert await ids(active=False) == {off["id"]}
    assert await ids(disabled=True) == {disabled["id"]}
    assert await ids(disabled=False, active=True) == {on["id"]}
    assert len(await walk(client, "/v1/webhooks", limit=1)) == 3


async def test_secret_is_shown_only_on_create_and_rotation(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    created = await make_webhook(client)
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    raw = (await stored(engine, created["id"])).secret
    assert "whsec_" not in raw, "stored encrypted"
    assert BOX.decrypt(raw) == secret

    url = f"/v1/webhooks/{created['id']}"
    shown = [
        (await client.get(url)).text,
        (await client.get("/v1/webhooks")).text,
        (await client.patch(url, json={"description": "x"})).text,
        (await client.get("/v1/audit-events")).text,
    ]
    for text_ in shown:
        assert "whsec_" not in text_
        assert 'secret"' not in text_

    rotated = await client.post(f"{url}/rotate-secret", json={"overlap_hours": 0})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != secret
    raw = (await stored(engine, created["id"])).secret
    assert "whsec_" not in raw, "stored encrypted"
    assert BOX.decrypt(raw) == new_secret
    assert "whsec_" not in (await client.get("/v1/audit-events")).text


async def test_idempotent_create_replays(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    body = {"url": URL, "event_types": ["alert.opened"]}
    headers = {"Idempotency-Key": "hook-1"}
    first = await client.post("/v1/webhooks", json=body, headers=headers)
    again = await client.post("/v1/webhooks", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await count_rows(engine, "webhook_endpoints") == 1
    async with engine.connect() as conn:
        kept = (
            await conn.execute(text("SELECT CAST(response_body AS text) FROM idempotency_records"))
        ).scalar_one()
    assert "whsec_" not in kept, "the replayable answer keeps the secret encrypted"


# Bad input: a problem naming the field, and nothing written.


async def test_bad_create_input_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    good = {"url": URL, "event_types": ["alert.opened"]}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "url": "ftp://files.example.com/in"}, "body.url"),
        ({**good, "url": "javascript:alert(1)"}, "body.url"),
        ({**good, "url": "127.0.0.1/hooks"}, "body.url"),
        ({**good, "url": "http://"}, "body.url"),
        ({**good, "url": "http://host.invalid/hooks"}, "body.url"),  # never resolves
        ({**good, "url": "http://127.0.0.1/" + "a" * 1990}, "body.url"),
        ({**good, "url": 5}, "body.url"),
        ({"event_types": ["alert.opened"]}, "body.url"),
        ({**good, "event_types": ["alert.opend"]}, "body.event_types"),
        ({**good, "event_types": []}, "body.event_types"),
        ({**good, "event_types": ["alert.opened", "alert.opened"]}, "body.event_types"),
        ({**good, "event_types": "alert.opened"}, "body.event_types"),
        ({**good, "event_types": [7]}, "body.event_types.0"),
        ({"url": URL}, "body.event_types"),
        ({**good, "active": "maybe"}, "body.active"),
        ({**good, "description": "x" * 1001}, "body.description"),
        ({**good, "description": "a\x00b"}, "body.description"),
        ({**good, "secret": "whsec_mine"}, "body.secret"),
    ]
    assert len(cases[5][0]["url"]) == 2007
    for body, field in cases:
        assert_problem(await client.post("/v1/webhooks", json=body), 422, field)
    malformed = await client.post(
        "/v1/webhooks", content=b'{"url": ', headers={"content-type": "application/json"}
    )
    assert_problem(malformed, 400)
    assert await count_rows(engine, "webhook_endpoints") == 0
    assert await count_rows(engine, "audit_events") == 0


async def test_longest_url_is_accepted(client: httpx.AsyncClient) -> None:
    url = "http://127.0.0.1/" + "a" * (2000 - len("http://127.0.0.1/"))
    assert len(url) == 2000
    assert (await make_webhook(client, url=url))["url"] == url


async def test_bad_update_input_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    created = await make_webhook(client)
    url = f"/v1/webhooks/{created['id']}"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"url": "ftp://files.example.com/in"}, "body.url"),
        ({"url": "http://host.invalid/"}, "body.url"),
        ({"event_types": ["nope"]}, "body.event_types"),
        ({"event_types": []}, "body.event_types"),
        ({"active": "sometimes"}, "body.active"),
        ({"url": None}, "body.url"),
        ({"event_types": None}, "body.event_types"),
        ({"active": None}, "body.active"),
        ({"secret": "whsec_x"}, "body.secret"),
    ]
    for body, field in cases:
        assert_problem(await client.patch(url, json=body), 422, field)
    malformed = await client.patch(url, content=b"{", headers={"content-type": "application/json"})
    assert_problem(malformed, 400)
    assert_problem(await client.patch("/v1/webhooks/nope", json={}), 422, "path.webhook_id")
    assert_problem(await client.patch(f"/v1/webhooks/{MISSING}", json={"active": True}), 404)
    row = await stored(engine, created["id"])
    assert (row.version, row.url, row.event_types) == (1, URL, ["alert.opened"])
    assert await _audit_actions(engine, created["id"]) == ["create"]


async def test_if_match_mismatch_is_412(client: httpx.AsyncClient) -> None:
    created = await make_webhook(client)
    url = f"/v1/webhooks/{created['id']}"
    first = await client.patch(url, json={"description": "a"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200
    stale = await client.patch(url, json={"description": "b"}, headers={"If-Match": '"1"'})
    assert assert_problem(stale, 412)["current_etag"] == '"2"'
    assert (await client.get(url)).json()["description"] == "a"


async def test_private_targets_are_refused_unless_allowed(
    app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
) -> None:
    strict = settings.model_copy(update={"webhook_allow_private": False})
    for url in (METADATA_URL, "http://127.0.0.1:8080/", "http://10.0.0.1/", URL):
        with pytest.raises(InvalidInput) as refused:
            await check_url(url, strict)
        (error,) = refused.value.errors
        assert error.field == "body.url"
        assert "not a public address" in error.message
        await check_url(url, settings)  # the test deployment allows private targets

    created = await make_webhook(client)
    app.state.settings = strict  # the app reads its settings per request
    try:
        body = {"url": METADATA_URL, "event_types": ["*"]}
        problem = assert_problem(await client.post("/v1/webhooks", json=body), 422, "body.url")
        assert "169.254.169.254" in problem["errors"][0]["message"]
        patch = await client.patch(f"/v1/webhooks/{created['id']}", json={"url": METADATA_URL})
        assert_problem(patch, 422, "body.url")
    finally:
        app.state.settings = settings
    assert await count_rows(engine, "webhook_endpoints") == 1
    assert (await stored(engine, created["id"])).url == URL


async def test_keys_without_admin_scope_are_refused(
    anonymous: httpx.AsyncClient, client_for: KeyMaker, engine: AsyncEngine
) -> None:
    admin = await client_for(Scope.admin)
    created = await make_webhook(admin)
    base = f"/v1/webhooks/{created['id']}"
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/v1/webhooks/event-types", None),
        ("GET", "/v1/webhooks", None),
        ("POST", "/v1/webhooks", {"url": URL, "event_types": ["*"]}),
        ("GET", base, None),
        ("PATCH", base, {"active": False}),
        ("DELETE", base, None),
        ("POST", f"{base}/rotate-secret", {}),
        ("POST", f"{base}/test", None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/recover", {"since": "2026-01-01T00:00:00Z"}),
        ("POST", f"/v1/webhook-deliveries/{MISSING}/redeliver", None),
    ]
    reader = await client_for(Scope.read)
    writer = await client_for(Scope.write)
    for method, path, body in calls:
        assert_problem(await anonymous.request(method, path, json=body), 401)
        assert_problem(await reader.request(method, path, json=body), 403)
        assert_problem(await writer.request(method, path, json=body), 403)
    row = await stored(engine, created["id"])
    assert (row.version, BOX.decrypt(row.secret)) == (1, created["secret"])
    assert await count_rows(engine, "webhook_endpoints") == 1


# Secrets rotate with an overlap; test events reach the endpoint signed.


async def _send_test(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, receiver: Receiver, hook: str
) -> ReceivedRequest:
    """POST .../test and do what the worker does with the delivery: the request received."""
    sent = await client.post(f"/v1/webhooks/{hook}/test")
    assert sent.status_code == 202, sent.text
    before = len(receiver.requests)
    async with httpx.AsyncClient() as http:
        delivered = await deliver(
            app.state.sessionmaker,
            http,
            settings,
            uuid.UUID(hook),
            [uuid.UUID(sent.json()["delivery_id"])],
            random.Random(3),
        )
    assert delivered == 1
    request = receiver.requests[before]
    assert request.headers["webhook-id"] == sent.json()["message_id"]
    return request


def _verifies(secret: str, request: ReceivedRequest) -> bool:
    try:
        Webhook(secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


async def test_rotation_keeps_the_previous_secret_until_the_overlap_ends(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    with Receiver() as receiver:
        created = await make_webhook(client, url=f"{receiver.url}/hooks", event_types=["*"])
        hook, first = created["id"], created["secret"]
        url = f"/v1/webhooks/{hook}"
        request = await _send_test(client, app, settings, receiver, hook)
        payload = Webhook(first).verify(request.body, request.headers)
        assert payload["type"] == "webhook.test"
        assert payload["data"]["endpoint_id"] == hook

        started = datetime.now(UTC)
        rotated = await client.post(f"{url}/rotate-secret", json={"overlap_hours": 2})
        assert rotated.status_code == 200, rotated.text
        assert rotated.headers["etag"] == '"2"'
        second = rotated.json()["secret"]
        expires = at(rotated.json()["previous_secret_expires_at"])
        assert expires is not None
        assert started + timedelta(hours=2) <= expires <= datetime.now(UTC) + timedelta(hours=2)
        got = (await client.get(url)).json()
        assert got["previous_secret_valid"] is True
        assert at(got["previous_secret_expires_at"]) == expires
        previous = (await stored(engine, hook)).previous_secret
        assert "whsec_" not in previous, "stored encrypted"
        assert BOX.decrypt(previous) == first
        request = await _send_test(client, app, settings, receiver, hook)
        assert _verifies(first, request)
        assert _verifies(second, request)

        # The overlap ends: the old secret no longer signs.
        await execute(
            engine,
            "UPDATE webhook_endpoints SET previous_secret_expires_at = now() - interval '1 second'"
            " WHERE id = :id",
            id=hook,
        )
        assert (await client.get(url)).json()["previous_secret_valid"] is False
        request = await _send_test(client, app, settings, receiver, hook)
        assert _verifies(second, request)
        assert not _verifies(first, request)

        # No overlap: the secret rotated out stops at once.
        third = (await client.post(f"{url}/rotate-secret", json={"overlap_hours": 0})).json()
        assert third["previous_secret_valid"] is False
        assert third["previous_secret_expires_at"] is None
        assert (await stored(engine, hook)).previous_secret is None
        request = await _send_test(client, app, settings, receiver, hook)
        assert _verifies(third["secret"], request)
        assert not _verifies(second, request)
    assert await _audit_actions(engine, hook) == [
        "create",
        "test",
        "rotate_secret",
        "test",
        "test",
        "rotate_secret",
        "test",
    ]


async def test_rotation_defaults_and_bounds(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    created = await make_webhook(client)
    url = f"/v1/webhooks/{created['id']}/rotate-secret"
    started = datetime.now(UTC)
    rotated = await client.post(url)  # no body: the configured overlap
    assert rotated.status_code == 200, rotated.text
    expires = at(rotated.json()["previous_secret_expires_at"])
    assert expires is not None
    overlap = timedelta(hours=settings.webhook_secret_overlap_hours)
    assert started + overlap <= expires <= datetime.now(UTC) + overlap
    for body, field in (
        ({"overlap_hours": 169}, "body.overlap_hours"),
        ({"overlap_hours": -1}, "body.overlap_hours"),
        ({"overlap_hours": "long"}, "body.overlap_hours"),
        ({"overlap": 1}, "body.overlap"),
    ):
        assert_problem(await client.post(url, json=body), 422, field)
    assert (await client.post(url, json={"overlap_hours": 168})).status_code == 200
    assert_problem(await client.post(f"/v1/webhooks/{MISSING}/rotate-secret"), 404)
    assert (await stored(engine, created["id"])).version == 3


async def test_test_event_goes_to_that_endpoint_only(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    target = await make_webhook(client, event_types=["*"])
    other = await make_webhook(client, event_types=["*"])
    sent = await client.post(f"/v1/webhooks/{target['id']}/test")
    assert sent.status_code == 202, sent.text
    body = sent.json()
    assert body["message_id"].startswith("msg_")

    (delivery,) = (await deliveries(engine, target["id"])).values()
    assert str(delivery.id) == body["delivery_id"]
    assert delivery.message_id == body["message_id"]
    assert delivery.status == "pending"
    assert delivery.attempts == 0
    assert await count_rows(engine, "webhook_deliveries") == 1
    assert await deliveries(engine, other["id"]) == {}
    async with engine.connect() as conn:
        message = (
            await conn.execute(
                text("SELECT * FROM webhook_messages WHERE id = :id"), {"id": body["message_id"]}
            )
        ).one()
    assert message.type == "webhook.test"
    assert str(message.subject_id) == target["id"]
    assert message.body["data"]["endpoint_id"] == target["id"]
    assert message.body["data"]["message"]

    again = (await client.post(f"/v1/webhooks/{target['id']}/test")).json()
    assert again["message_id"] != body["message_id"]
    assert set(await deliveries(engine, target["id"])) == {
        body["delivery_id"],
        again["delivery_id"],
    }


async def test_test_event_needs_a_receiving_endpoint(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    inactive = await make_webhook(client, event_types=["*"], active=False)
    disabled = await make_webhook(client, event_types=["*"])
    await execute(
        engine,
        "UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = 'x' WHERE id = :id",
        id=disabled["id"],
    )
    for hook in (inactive, disabled):
        assert_problem(await client.post(f"/v1/webhooks/{hook['id']}/test"), 409)
    assert_problem(await client.post(f"/v1/webhooks/{MISSING}/test"), 404)
    # a test reaches the endpoint whatever event types it subscribes to
    unsubscribed = await make_webhook(client, event_types=["alert.opened"])
    assert (await client.post(f"/v1/webhooks/{unsubscribed['id']}/test")).status_code == 202
    assert await count_rows(engine, "webhook_deliveries") == 1
    assert await count_rows(engine, "webhook_messages") == 1


# The delivery log, redelivery and recovery.


async def test_deliveries_are_listed_newest_first_with_attempts(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    hook = (await make_webhook(client))["id"]
    other = (await make_webhook(client))["id"]
    now = datetime.now(UTC).replace(microsecond=0)
    failed = await insert_delivery(
        engine,
        hook,
        now - timedelta(hours=3),
        attempts=(
            attempt(now - timedelta(hours=3), 503),
            attempt(now - timedelta(hours=2, minutes=55), None, "timeout after 15 s"),
        ),
    )
    pending = await insert_delivery(
        engine,
        hook,
        now - timedelta(hours=2),
        status="pending",
        event_type="customer.health.changed",
        next_attempt_at=now + timedelta(minutes=5),
    )
    delivered = await insert_delivery(
        engine, hook, now - timedelta(hours=1), status="delivered", attempts=(attempt(now, 200),)
    )
    await insert_delivery(engine, other, now, attempts=(attempt(now, 500),))

    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        first = await client.get(f"/v1/webhooks/{hook}/deliveries", params={"limit": 3})
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert first.status_code == 200, first.text
    assert len([s for s in statements if "FROM webhook_attempts" in s]) == 1

    items = first.json()["items"]
    assert [i["id"] for i in items] == [str(d["id"]) for d in (delivered, pending, failed)]
    oldest = items[2]
    assert oldest["message_id"] == failed["message_id"]
    assert oldest["endpoint_id"] == hook
    assert oldest["event_type"] == "alert.opened"
    assert oldest["status"] == "failed"
    assert oldest["attempt_count"] == 2
    assert oldest["next_attempt_at"] is None
    assert oldest["last_status_code"] is None
    assert oldest["last_error"] == "timeout after 15 s"
    assert at(oldest["created_at"]) == now - timedelta(hours=3)
    assert at(oldest["finished_at"]) == now - timedelta(hours=2)
    assert [(at(a["attempted_at"]), a["status_code"], a["error"]) for a in oldest["attempts"]] == [
        (now - timedelta(hours=3), 503, None),
        (now - timedelta(hours=2, minutes=55), None, "timeout after 15 s"),
    ]
    assert oldest["attempts"][0]["latency_ms"] == 12.5
    assert oldest["attempts"][0]["response_excerpt"] == "answer 503"
    assert items[1]["attempts"] == []
    assert items[1]["event_type"] == "customer.health.changed"
    assert at(items[1]["next_attempt_at"]) == now + timedelta(minutes=5)
    assert [a["status_code"] for a in items[0]["attempts"]] == [200]

    paged = await walk(client, f"/v1/webhooks/{hook}/deliveries", limit=1)
    assert paged == items
    only_failed = await walk(client, f"/v1/webhooks/{hook}/deliveries", status="failed")
    assert [i["id"] for i in only_failed] == [str(failed["id"])]
    assert_problem(
        await client.get(f"/v1/webhooks/{hook}/deliveries", params={"status": "lost"}),
        422,
        "query.status",
    )
    assert_problem(await client.get(f"/v1/webhooks/{MISSING}/deliveries"), 404)
    empty = await client.get(f"/v1/webhooks/{hook}/deliveries", params={"status": "failed"})
    assert empty.status_code == 200


async def test_delete_cascades_to_deliveries(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    hook = (await make_webhook(client))["id"]
    now = datetime.now(UTC)
    await insert_delivery(engine, hook, now, attempts=(attempt(now, 500),))
    assert (await client.delete(f"/v1/webhooks/{hook}")).status_code == 204
    assert await count_rows(engine, "webhook_deliveries") == 0
    assert await count_rows(engine, "webhook_attempts") == 0


async def test_redeliver_puts_a_delivery_back_to_pending(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    hook = (await make_webhook(client))["id"]
    now = datetime.now(UTC)
    failed = await insert_delivery(
        engine,
        hook,
        now - timedelta(days=2),
        attempts=tuple(attempt(now - timedelta(days=2, hours=-i), 500) for i in range(8)),
    )
    before = datetime.now(UTC)
    response = await client.post(f"/v1/webhook-deliveries/{failed['id']}/redeliver")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["id"] == str(failed["id"])
    assert body["message_id"] == failed["message_id"]
    assert body["status"] == "pending"
    assert body["attempt_count"] == 0
    assert body["finished_at"] is None
    assert len(body["attempts"]) == 8  # the history stays

    row = (await deliveries(engine, hook))[str(failed["id"])]
    assert (row.status, row.attempts, row.finished_at) == ("pending", 0, None)
    assert row.message_id == failed["message_id"]
    assert row.next_attempt_at <= datetime.now(UTC)
    assert row.next_attempt_at >= before - timedelta(seconds=5)
    assert await _audit_actions(engine, str(failed["id"])) == ["redeliver"]

    # A pending delivery due later is made due now.
    later = await insert_delivery(
        engine, hook, now, status="pending", next_attempt_at=now + timedelta(hours=5)
    )
    again = await client.post(f"/v1/webhook-deliveries/{later['id']}/redeliver")
    assert again.status_code == 202
    due = at(again.json()["next_attempt_at"])
    assert due is not None
    assert due <= datetime.now(UTC)
    assert_problem(await client.post(f"/v1/webhook-deliveries/{MISSING}/redeliver"), 404)
    assert_problem(await client.post("/v1/webhook-deliveries/x/redeliver"), 422, "path.delivery_id")


async def test_recover_resends_failed_deliveries_in_the_window(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    hook = (await make_webhook(client))["id"]
    other = (await make_webhook(client))["id"]
    now = datetime.now(UTC)

    def hours_ago(h: float) -> datetime:
        return now - timedelta(hours=h)

    too_early = await insert_delivery(engine, hook, hours_ago(12))
    inside = [await insert_delivery(engine, hook, hours_ago(h)) for h in (10, 8, 5)]
    on_until = await insert_delivery(engine, hook, hours_ago(2))
    delivered = await insert_delivery(engine, hook, hours_ago(6), status="delivered")
    elsewhere = await insert_delivery(engine, other, hours_ago(6))

    window = {"since": hours_ago(10).isoformat(), "until": hours_ago(2).isoformat()}
    response = await client.post(f"/v1/webhooks/{hook}/recover", json=window)
    assert response.status_code == 202, response.text
    assert response.json() == {"count": 3}
    rows = await deliveries(engine, hook)
    pending = {key for key, row in rows.items() if row.status == "pending"}
    assert pending == {str(d["id"]) for d in inside}
    for key in pending:
        assert rows[key].attempts == 0
        assert rows[key].finished_at is None
        assert rows[key].next_attempt_at <= datetime.now(UTC)
    assert rows[str(delivered["id"])].status == "delivered"
    assert rows[str(too_early["id"])].status == "failed"
    assert (await deliveries(engine, other))[str(elsewhere["id"])].status == "failed"

    open_ended = await client.post(
        f"/v1/webhooks/{hook}/recover", json={"since": hours_ago(3).isoformat()}
    )
    assert open_ended.json() == {"count": 1}
    assert (await deliveries(engine, hook))[str(on_until["id"])].status == "pending"
    assert await _audit_actions(engine, hook) == ["create", "recover", "recover"]


async def test_recover_bad_input(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    hook = (await make_webhook(client))["id"]
    now = datetime.now(UTC)
    failed = await insert_delivery(engine, hook, now - timedelta(hours=1))
    url = f"/v1/webhooks/{hook}/recover"
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "body.since"),
        ({"since": (now + timedelta(hours=1)).isoformat()}, "body.since"),
        ({"since": "2026-01-01T00:00:00"}, "body.since"),  # no zone
        ({"since": "yesterday"}, "body.since"),
        (
            {
                "since": (now - timedelta(hours=2)).isoformat(),
                "until": (now - timedelta(hours=3)).isoformat(),
            },
            "body.until",
        ),
        ({"since": (now - timedelta(hours=2)).isoformat(), "from": "x"}, "body.from"),
    ]
    for body, field in cases:
        assert_problem(await client.post(url, json=body), 422, field)
    assert_problem(
        await client.post(f"/v1/webhooks/{MISSING}/recover", json={"since": now.isoformat()}), 404
    )
    assert (await deliveries(engine, hook))[str(failed["id"])].status == "failed"
    assert await _audit_actions(engine, hook) == ["create"]


async def test_reenabling_a_disabled_endpoint_clears_why(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    hook = (await make_webhook(client))["id"]
    await execute(
        engine,
        "UPDATE webhook_endpoints SET disabled_at = now(), failing_since = now() - interval '5 days',"
        " disabled_reason = 'The endpoint answered 410 Gone.', version = version + 1 WHERE id = :id",
        id=hook,
    )
    url = f"/v1/webhooks/{hook}"
    got = await client.get(url)
    shown = got.json()
    assert shown["disabled_reason"] == "The endpoint answered 410 Gone."
    assert shown["disabled_at"] is not None
    assert shown["failing_since"] is not None
    assert shown["active"] is True

    # Changing something else keeps it disabled.
    kept = await client.patch(url, json={"description": "fixed the receiver"})
    assert kept.json()["disabled_reason"] == "The endpoint answered 410 Gone."

    enabled = await client.patch(url, json={"active": True}, headers={"If-Match": '"3"'})
    assert enabled.status_code == 200, enabled.text
    body = enabled.json()
    assert (body["disabled_at"], body["disabled_reason"], body["failing_since"]) == (
        None,
        None,
        None,
    )
    assert body["active"] is True
    assert body["version"] == 4
    row = await stored(engine, hook)
    assert (row.disabled_at, row.disabled_reason, row.failing_since) == (None, None, None)
    assert [w["id"] for w in await walk(client, "/v1/webhooks", disabled=False)] == [hook]


async def test_a_new_url_restarts_the_failure_clock(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    hook = (await make_webhook(client))["id"]
    await execute(
        engine,
        "UPDATE webhook_endpoints SET failing_since = now() - interval '1 day' WHERE id = :id",
        id=hook,
    )
    same = await client.patch(f"/v1/webhooks/{hook}", json={"url": URL})
    assert same.json()["failing_since"] is not None
    moved = await client.patch(f"/v1/webhooks/{hook}", json={"url": "http://127.0.0.1:10/new"})
    assert moved.json()["failing_since"] is None
    assert moved.json()["url"] == "http://127.0.0.1:10/new"

"""GET by id answered before FastAPI's routing (services/api/hotreads.py): the same answer as the
route, and every request that is not a plain success handed on to the app."""

import uuid
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.customers.schemas import CustomerRead
from services.api.hotreads import HOT_READS, HotRead, HotReads
from services.core.api_keys import create_api_key
from services.core.db import session_scope
from services.core.models import Customer
from services.core.models.enums import Scope as KeyScope
from tests.api.customer_rows import insert_channel, insert_customer
from tests.api.test_limits import client_of, key_for, rate
from tests.helpers import assert_problem


class Recorder:
    """Stands in for the FastAPI app behind the layer: counts what reaches it."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b"passed on"})


async def call(
    app: FastAPI, layer: ASGIApp, path: str, key: str | None, method: str = "GET"
) -> list[Message]:
    """Send one request straight to `layer`, as the layers outside it would."""
    headers = [] if key is None else [(b"authorization", f"Bearer {key}".encode())]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "app": app,
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await layer(scope, receive, send)
    return sent


async def new_key(app: FastAPI, *scopes: KeyScope) -> str:
    async with session_scope(app.state.sessionmaker) as session:
        return (await create_api_key(session, "hot", set(scopes))).key


@pytest.fixture
async def rows(client: httpx.AsyncClient, engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    """One row of each hot resource, as the API answers it, by path prefix."""
    channel = await insert_channel(engine)
    customer = await insert_customer(engine, channel_id=channel)
    interaction = await client.post(
        "/v1/interactions",
        json={"customer_id": str(customer), "kind": "visit", "occurred_at": "2026-03-01T09:00:00Z"},
    )
    ticket = await client.post(
        "/v1/tickets", json={"customer_id": str(customer), "subject": "退货", "kind": "complaint"}
    )
    assert interaction.status_code == ticket.status_code == 201
    return {
        "/v1/customers/": (await client.get(f"/v1/customers/{customer}")).json(),
        "/v1/channels/": (await client.get(f"/v1/channels/{channel}")).json(),
        "/v1/interactions/": interaction.json(),
        "/v1/tickets/": ticket.json(),
    }


def test_each_hot_read_names_a_get_route_with_its_schema(app: FastAPI) -> None:
    routes = {
        context.path_format: context.original_route
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        and "GET" in (context.original_route.methods or ())
    }
    for read in HOT_READS:
        route = routes[read.template]
        assert isinstance(route, APIRoute)
        assert route.response_model is read.schema, read.template


async def test_a_success_is_answered_without_the_app_and_as_the_app_answers_it(
    app: FastAPI, rows: dict[str, dict[str, Any]]
) -> None:
    key = await new_key(app, KeyScope.read)
    recorder = Recorder()
    layer = HotReads(recorder)
    for prefix, row in rows.items():
        path = f"{prefix}{row['id']}"
        served = await call(app, layer, path, key)
        assert recorder.calls == 0, path
        # The route's own answer, from FastAPI's router without this layer in front.
        routed = await call(app, AsyncExitStackMiddleware(app.router), path, key)
        assert served == routed, path
        start, body = served
        assert start["status"] == 200
        assert orjson.loads(body["body"]) == row
        etags = [value for name, value in start["headers"] if name == b"etag"]
        assert etags == ([] if prefix == "/v1/interactions/" else [b'"1"']), path


async def test_everything_but_a_success_goes_on_to_the_app(
    app: FastAPI, rows: dict[str, dict[str, Any]]
) -> None:
    reader = await new_key(app, KeyScope.read)
    customer = rows["/v1/customers/"]["id"]
    recorder = Recorder()
    layer = HotReads(recorder)
    passed_on = [
        (f"/v1/customers/{customer}", None, "GET"),  # no key
        (f"/v1/customers/{customer}", "rk_unknown", "GET"),
        (f"/v1/customers/{uuid.uuid4()}", reader, "GET"),  # no such row
        (f"/v1/tickets/{customer}", reader, "GET"),  # an id of another table
        (f"/v1/customers/{customer.replace('-', '')}", reader, "GET"),  # not canonical
        (f"/v1/customers/{customer}/", reader, "GET"),
        (f"/v1/customers/{customer}/health", reader, "GET"),
        (f"/v1/customers/{customer}", reader, "HEAD"),
        (f"/v1/customers/{customer}", reader, "DELETE"),
        (f"/v1/jobs/{customer}", reader, "GET"),  # not a hot read
    ]
    for count, (path, key, method) in enumerate(passed_on, start=1):
        sent = await call(app, layer, path, key, method)
        assert recorder.calls == count, (path, key, method)
        assert sent[0]["status"] == 599

    admin_only = HotReads(
        recorder, (HotRead("/v1/customers/{customer_id}", Customer, CustomerRead, KeyScope.admin),)
    )
    await call(app, admin_only, f"/v1/customers/{customer}", reader)
    assert recorder.calls == len(passed_on) + 1, "a key without the scope goes to the app's 403"


async def test_answers_passed_on_are_the_apps_problems(
    app: FastAPI, anonymous: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    missing = await client.get(f"/v1/customers/{uuid.uuid4()}")
    assert_problem(missing, 404)
    assert_problem(await anonymous.get(f"/v1/channels/{uuid.uuid4()}"), 401)
    unknown = await anonymous.get(
        f"/v1/tickets/{uuid.uuid4()}", headers={"Authorization": "Bearer rk_nobody"}
    )
    assert_problem(unknown, 401)


async def test_a_hot_read_counts_once_against_the_rate_limit_and_carries_its_headers(
    app: FastAPI, rows: dict[str, dict[str, Any]]
) -> None:
    key = await key_for(app, KeyScope.read, rate_limit_per_minute=3)
    customer = rows["/v1/customers/"]["id"]
    async with client_of(app, key) as reader:
        found = await reader.get(f"/v1/customers/{customer}")
        assert found.status_code == 200
        assert rate(found)[:2] == (3, 2)
        missing = await reader.get(f"/v1/customers/{uuid.uuid4()}")
        assert_problem(missing, 404)
        assert rate(missing)[:2] == (3, 1), "passed on to the app, counted once"
        assert (await reader.get(f"/v1/customers/{customer}")).status_code == 200
        refused = await reader.get(f"/v1/customers/{customer}")
        assert_problem(refused, 429)
        assert "retry-after" in refused.headers

"""JSON log lines: a request id on every line of a request, echoed to the client and recorded in
the audit trail, an access line per request, and no secret in any line."""

import logging
import re

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from services.api import observability
from services.core.api_keys import create_api_key
from services.core.db import session_scope
from services.core.logs import REDACTED, redact_text
from services.core.models.enums import Scope
from tests.conftest import KeyMaker
from tests.logcapture import captured_logs

GENERATED = re.compile(r"[0-9a-f]{32}")


async def test_a_request_id_is_echoed_and_on_its_access_line(client_for: KeyMaker) -> None:
    client = await client_for(Scope.read, name="console-east")
    with captured_logs() as logs:
        response = await client.get("/v1/channels", headers={"X-Request-ID": "trace-7f3a 01"})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "trace-7f3a 01"
    [line] = logs.find(logger="retention.access", request_id="trace-7f3a 01")
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert (line["method"], line["route"], line["path"]) == ("GET", "/v1/channels", "/v1/channels")
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert line["api_key_name"] == "console-east"
    assert line["timestamp"].endswith("Z")


@pytest.mark.parametrize(
    "sent",
    [None, "", "x" * 201, "tab\there", b"caf\xe9"],
    ids=["missing", "empty", "too-long", "control-character", "not-ascii"],
)
async def test_a_missing_or_invalid_request_id_is_replaced(
    anonymous: httpx.AsyncClient, sent: str | bytes | None
) -> None:
    headers = (
        {}
        if sent is None
        else {b"X-Request-ID": sent if isinstance(sent, bytes) else sent.encode()}
    )
    with captured_logs() as logs:
        first = await anonymous.get("/healthz", headers=headers)
        second = await anonymous.get("/healthz", headers=headers)
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(GENERATED.fullmatch(i) for i in ids), ids
    assert ids[0] != ids[1]
    assert [line["request_id"] for line in logs.find(logger="retention.access")] == ids
    if isinstance(sent, str) and sent:
        assert sent not in logs.text


async def test_the_longest_request_id_is_kept_and_audited_by_its_start(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    request_id = "r" * 200
    response = await client.post(
        "/v1/channels",
        json={"name": "North", "type": "agent"},
        headers={"X-Request-ID": request_id},
    )
    assert response.status_code == 201, response.text
    assert response.headers["x-request-id"] == request_id
    async with engine.connect() as conn:
        audited = await conn.scalar(
            text("SELECT request_id FROM audit_events WHERE resource_id = :id"),
            {"id": response.json()["id"]},
        )
    assert audited == request_id[:100]


def _probe_app() -> FastAPI:
    """The request middleware around two endpoints that log: one answers, one fails."""
    log = logging.getLogger("services.api.probe")

    async def inside(request: Request) -> Response:
        log.info("inside")
        return PlainTextResponse("ok")

    async def broken(request: Request) -> Response:
        raise RuntimeError("boom")

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return PlainTextResponse("error", status_code=500)

    app = FastAPI()
    app.add_route("/items/{item_id}", inside)
    app.add_route("/broken", broken)
    app.add_exception_handler(Exception, unexpected)
    observability.install(app)
    return app


async def test_every_line_of_a_request_names_it_even_an_error() -> None:
    transport = httpx.ASGITransport(app=_probe_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as probe:
        with captured_logs() as logs:
            ok = await probe.get("/items/42", headers={"X-Request-ID": "lines-1"})
            failed = await probe.get("/broken", headers={"X-Request-ID": "lines-2"})
            logging.getLogger("services.api.probe").warning("outside any request")
    assert ok.status_code == 200
    assert failed.status_code == 500
    assert failed.headers["x-request-id"] == "lines-2"
    assert [line["event"] for line in logs.find(request_id="lines-1")] == ["inside", "request"]
    assert logs.find(request_id="lines-1", event="request")[0]["route"] == "/items/{item_id}"
    errors = logs.find(request_id="lines-2")
    assert {line["event"] for line in errors} == {"request", "unhandled error"}
    [access] = [line for line in errors if line["event"] == "request"]
    assert access["status"] == 500
    [error] = [line for line in errors if line["event"] == "unhandled error"]
    assert "RuntimeError: boom" in error["exception"]
    [outside] = logs.find(event="outside any request")
    assert "request_id" not in outside


async def test_no_key_or_secret_reaches_the_logs(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, app: FastAPI
) -> None:
    async with session_scope(app.state.sessionmaker) as session:
        new = await create_api_key(session, "ops", {Scope.admin})
    key = new.key
    with captured_logs() as logs:
        headers = {"Authorization": f"Bearer {key}"}
        assert (await anonymous.get("/v1/channels", headers=headers)).status_code == 200
        wrong = key[:-4] + "AAAA"
        unknown = {"Authorization": f"Bearer {wrong}"}
        assert (await anonymous.get("/v1/channels", headers=unknown)).status_code == 401
        hook = await client.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "event_types": ["alert.opened"]}
        )
        assert hook.status_code == 201, hook.text
        secret = hook.json()["secret"]
        # Code that logs carelessly: in the message, in fields, nested, and in a traceback.
        log = logging.getLogger("services.api.careless")
        log.warning("got %s", key, extra={"authorization": f"Bearer {key}", "secret": secret})
        log.warning("headers", extra={"headers": {"Authorization": key, "X-Api-Key": key}})
        log.warning("connecting", extra={"url": "postgresql://app:hunter2@db:5432/retention"})
        try:
            raise ValueError(f"bad key {key} for {secret}")
        except ValueError:
            log.exception("failed")
    assert key not in logs.text
    assert wrong not in logs.text
    assert secret not in logs.text
    assert "hunter2" not in logs.text
    lines = logs.lines()
    [access] = [line for line in lines if line.get("status") == 200 and line.get("api_key_name")]
    assert access["api_key_name"] == "ops"
    [got] = logs.find(logger="services.api.careless", authorization=REDACTED)
    assert got["secret"] == REDACTED
    assert got["event"] == f"got {REDACTED}"
    [nested] = logs.find(event="headers")
    assert nested["headers"] == {"Authorization": REDACTED, "X-Api-Key": REDACTED}
    [url] = logs.find(event="connecting")
    assert url["url"] == f"postgresql://app:{REDACTED}@db:5432/retention"
    [failed] = logs.find(event="failed")
    assert "ValueError: bad key" in failed["exception"]


def test_redaction_keeps_ordinary_text() -> None:
    ordinary = "GET /v1/customers/0196f5d2-9a10 took 3 ms; see http://example.com:8080/a@b"
    assert redact_text(ordinary) == ordinary

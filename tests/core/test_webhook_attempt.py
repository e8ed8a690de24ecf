import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from standardwebhooks.webhooks import Webhook

from services.core.webhooks.attempt import AttemptResult, attempt
from services.core.webhooks.retry import Outcome
from services.core.webhooks.signing import headers, new_secret
from tests.receiver import Receiver, closed_port

BODY = json.dumps({"type": "alert.opened", "data": {"customer": "张伟"}}, ensure_ascii=False)
SENT = BODY.encode()
HEADERS = {"content-type": "application/json"}

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def post(url: str, timeout: float = 5.0) -> AttemptResult:
    async with httpx.AsyncClient(trust_env=False) as client:
        return await attempt(client, url, SENT, HEADERS, timeout)


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A TCP server speaking whatever `handler` writes, for answers no HTTP server gives."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        server.close()
        await server.wait_closed()


async def test_200_is_delivered() -> None:
    with Receiver() as receiver:
        receiver.respond(status=200, body="ok")
        result = await post(receiver.url + "/hooks")
        assert len(receiver.wait_for(1)) == 1
    assert result.status == 200
    assert result.outcome is Outcome.delivered
    assert result.error is None
    assert result.response_excerpt == "ok"
    assert result.retry_after is None
    assert 0 < result.latency_ms < 5000


async def test_the_receiver_sees_exactly_the_headers_and_body_sent() -> None:
    secret = new_secret()
    sent = headers("msg_2Yx", int(time.time()), SENT, [secret])
    with Receiver() as receiver:
        async with httpx.AsyncClient(trust_env=False) as client:
            result = await attempt(client, receiver.url + "/hooks/alerts", SENT, sent, 5.0)
        [request] = receiver.wait_for(1)
    assert result.outcome is Outcome.delivered
    assert request.method == "POST"
    assert request.path == "/hooks/alerts"
    assert request.body == SENT
    for name, value in sent.items():
        assert request.headers[name] == value
    assert request.headers["content-length"] == str(len(SENT))
    assert request.headers["accept-encoding"] == "identity"
    assert Webhook(secret).verify(request.body, request.headers) == json.loads(BODY)


async def test_500_is_retried_with_an_excerpt() -> None:
    with Receiver() as receiver:
        receiver.respond(status=500, body="database is down")
        result = await post(receiver.url)
    assert result.status == 500
    assert result.outcome is Outcome.retry
    assert result.error is None
    assert result.response_excerpt == "database is down"


async def test_503_with_retry_after() -> None:
    with Receiver() as receiver:
        receiver.respond(status=503, headers={"Retry-After": "2"})
        result = await post(receiver.url)
    assert result.status == 503
    assert result.outcome is Outcome.retry
    assert result.retry_after == timedelta(seconds=2)


async def test_429_is_retried() -> None:
    with Receiver() as receiver:
        receiver.respond(status=429, headers={"Retry-After": "120"}, body="slow down")
        result = await post(receiver.url)
    assert result.status == 429
    assert result.outcome is Outcome.retry
    assert result.retry_after == timedelta(minutes=2)


async def test_410_is_gone() -> None:
    with Receiver() as receiver:
        receiver.respond(status=410)
        result = await post(receiver.url)
    assert result.status == 410
    assert result.outcome is Outcome.gone


async def test_a_redirect_is_not_followed() -> None:
    with Receiver() as receiver:
        receiver.respond(status=301, headers={"Location": receiver.url + "/moved"})
        result = await post(receiver.url + "/hooks")
        await asyncio.sleep(0.2)
        requests = receiver.requests
    assert result.status == 301
    assert result.outcome is Outcome.retry
    assert [r.path for r in requests] == ["/hooks"]


async def test_the_script_is_followed_in_order_then_defaults_to_200() -> None:
    with Receiver() as receiver:
        receiver.respond(status=500, times=2)
        receiver.respond(status=410)
        statuses = [(await post(receiver.url)).status for _ in range(4)]
        assert len(receiver.wait_for(4)) == 4
    assert statuses == [500, 500, 410, 200]


async def test_a_receiver_slower_than_the_timeout() -> None:
    with Receiver() as receiver:
        receiver.respond(status=200, delay=2.0)
        started = time.monotonic()
        result = await post(receiver.url, timeout=0.5)
        elapsed = time.monotonic() - started
        assert len(receiver.wait_for(1)) == 1
    assert result.status is None
    assert result.outcome is Outcome.retry
    assert result.error == "timeout after 0.5 s"
    assert 400 <= result.latency_ms < 1500
    assert elapsed < 1.5


async def test_a_closed_port_is_a_connection_error() -> None:
    result = await post(f"http://127.0.0.1:{closed_port()}/hooks")
    assert result.status is None
    assert result.outcome is Outcome.retry
    assert result.error is not None
    assert result.error.startswith("connection failed")


async def test_a_huge_body_is_cut_to_1000_characters() -> None:
    with Receiver() as receiver:
        receiver.respond(status=500, body="错" * 2_000_000)  # 6 MB
        result = await post(receiver.url)
    assert result.status == 500
    assert result.error is None
    assert result.response_excerpt == "错" * 1000


async def test_the_response_charset_is_honoured_and_bad_bytes_replaced() -> None:
    with Receiver() as receiver:
        receiver.respond(
            status=400,
            headers={"Content-Type": "text/plain; charset=gbk"},
            body="字段错误".encode("gbk"),
        )
        receiver.respond(status=400, body=b"bad \xff\xfe bytes")
        gbk = await post(receiver.url)
        broken = await post(receiver.url)
    assert gbk.response_excerpt == "字段错误"
    assert broken.response_excerpt == "bad \ufffd\ufffd bytes"


async def test_a_connection_closed_without_an_answer() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return

    async with raw_server(hang_up) as url:
        result = await post(url)
    assert result.status is None
    assert result.outcome is Outcome.retry
    assert result.error is not None
    assert result.error.startswith("invalid response")


async def test_an_answer_that_is_not_http() -> None:
    async def babble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()

    async with raw_server(babble) as url:
        result = await post(url)
    assert result.status is None
    assert result.error is not None
    assert result.error.startswith("invalid response")


async def test_a_body_cut_short_keeps_the_status_and_what_arrived() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()

    async with raw_server(cut) as url:
        result = await post(url)
    assert result.status == 200
    assert result.outcome is Outcome.delivered
    assert result.error is not None
    assert result.error.startswith("reading the response body")
    assert result.response_excerpt == "partial"


async def test_a_trickling_answer_is_bounded_by_the_whole_attempt_timeout() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(50):  # a byte every 0.1 s: no single read waits for the timeout
            writer.write(b".")
            await writer.drain()
            await asyncio.sleep(0.1)

    async with raw_server(trickle) as url:
        started = time.monotonic()
        result = await post(url, timeout=1.0)
        elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert result.status == 200
    assert result.error == "reading the response body: timeout after 1 s"
    assert 3 <= len(result.response_excerpt) <= 12
    assert set(result.response_excerpt) == {"."}

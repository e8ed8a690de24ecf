"""One HTTP attempt at delivering a webhook, reduced to a record that never raises for network
trouble: what the subscriber answered, how long it took, and what that means for the delivery."""

import asyncio
import codecs
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from services.core.webhooks.retry import Outcome, classify, parse_retry_after

EXCERPT_CHARS = 1000
# Enough bytes for EXCERPT_CHARS characters of UTF-8 (at most 4 bytes each); nothing more is read.
EXCERPT_BYTES = 4 * EXCERPT_CHARS


@dataclass(frozen=True)
class AttemptResult:
    status: int | None
    latency_ms: float
    """From sending the request until the response headers arrived or the attempt failed."""
    error: str | None
    """What went wrong on the wire, e.g. "timeout after 15 s", "connection failed: …"; None when
    the exchange completed, whatever the status."""
    response_excerpt: str
    retry_after: timedelta | None
    outcome: Outcome


def _describe(exc: Exception, timeout: float) -> str:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"timeout after {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {detail}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"invalid response: {detail}"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return f"connection broken: {detail}"
    return f"{type(exc).__name__}: {detail}"


async def _read_start(response: httpx.Response, into: bytearray) -> bool:
    """Append up to EXCERPT_BYTES of the raw body to `into`; True when the body ended within them.

    Raw bytes are read (the request asks for no content coding), so a compressed answer cannot
    expand in memory; a server that compresses anyway gets its excerpt shown as it came.
    """
    async for chunk in response.aiter_raw():
        into.extend(chunk)
        if len(into) >= EXCERPT_BYTES:
            del into[EXCERPT_BYTES:]
            return False  # the caller closes the response, dropping the rest
    return True


def _text_encoding(response: httpx.Response) -> str:
    """The response's charset when it names a text encoding, else UTF-8."""
    encoding = response.encoding or "utf-8"
    try:
        b"".decode(encoding)
    except LookupError:  # unknown, or a bytes-to-bytes codec such as base64
        return "utf-8"
    return encoding


def _excerpt(data: bytes, encoding: str, complete: bool) -> str:
    """Decode leniently; a character cut off at the end of an incomplete read is dropped."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    text: str = decoder.decode(data, final=complete)
    return text[:EXCERPT_CHARS]


async def attempt(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
) -> AttemptResult:
    """POST `body` to `url` once, without following redirects.

    `timeout` bounds the whole attempt (connecting, sending, the answer and its excerpt), not each
    network operation alone, so a server that trickles bytes cannot hold a worker. Once status and
    headers are in, the outcome follows from the status; trouble while reading the body only
    shortens the excerpt and is noted in `error`.
    """
    request_headers = httpx.Headers(headers)
    request_headers.setdefault("accept-encoding", "identity")
    request = client.build_request(
        "POST", url, content=body, headers=request_headers, timeout=timeout
    )
    deadline = asyncio.get_running_loop().time() + timeout
    started = time.perf_counter()
    try:
        async with asyncio.timeout_at(deadline):
            response = await client.send(request, stream=True, follow_redirects=False)
    except (TimeoutError, httpx.HTTPError) as exc:
        return AttemptResult(
            status=None,
            latency_ms=(time.perf_counter() - started) * 1000,
            error=_describe(exc, timeout),
            response_excerpt="",
            retry_after=None,
            outcome=classify(None),
        )
    latency_ms = (time.perf_counter() - started) * 1000
    error = None
    received = bytearray()
    complete = False
    try:
        async with asyncio.timeout_at(deadline):
            complete = await _read_start(response, received)
    except (TimeoutError, httpx.HTTPError) as exc:
        error = f"reading the response body: {_describe(exc, timeout)}"
    finally:
        await response.aclose()
    return AttemptResult(
        status=response.status_code,
        latency_ms=latency_ms,
        error=error,
        response_excerpt=_excerpt(bytes(received), _text_encoding(response), complete),
        retry_after=parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC)),
        outcome=classify(response.status_code),
    )

"""A real HTTP server for webhook tests, on 127.0.0.1 in a background thread.

    with Receiver() as receiver:
        receiver.respond(status=503, headers={"Retry-After": "2"})
        ...  # send to receiver.url
        [first] = receiver.wait_for(1)

It records every request and answers from a script of replies, in order; once the script is
used up it answers 200 with an empty body. A reply may be delayed to play a slow subscriber;
closing the receiver cuts such delays short so that tests do not wait for them.
"""

import asyncio
import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import Receive, Scope, Send

HOST = "127.0.0.1"
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    """Lower-cased names; a repeated header's values joined with ", "."""
    body: bytes
    received_at: datetime


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    """Seconds to wait before answering."""


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released), for refused
    connections."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


class Receiver:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._requests: list[ReceivedRequest] = []
        self._script: deque[Reply] = deque()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind((HOST, 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        config = uvicorn.Config(
            self._app,
            interface="asgi3",
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="webhook-receiver", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None

    # Script and records; called from the test's thread.

    def respond(
        self,
        status: int = 200,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | str = b"",
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """Append `times` replies to the script."""
        data = body.encode() if isinstance(body, str) else body
        reply = Reply(status=status, headers=dict(headers or {}), body=data, delay=delay)
        with self._changed:
            self._script.extend([reply] * times)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._changed:
            return list(self._requests)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until at least `n` requests have arrived; all requests so far."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= n, timeout):
                raise TimeoutError(
                    f"{len(self._requests)} of {n} requests arrived within {timeout} s"
                )
            return list(self._requests)

    # Life cycle.

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise RuntimeError("the webhook receiver did not start")
            time.sleep(0.01)

    def close(self) -> None:
        if self._loop is not None and self._closing is not None:
            with contextlib.suppress(RuntimeError):  # the loop may have ended already
                self._loop.call_soon_threadsafe(self._closing.set)
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()
        if self._thread.is_alive():
            raise RuntimeError("the webhook receiver did not stop")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # The server side; runs in the receiver's thread.

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        await self._server.serve(sockets=[self._socket])

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        received_at = datetime.now(UTC)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                break
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        request = ReceivedRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            headers=headers,
            body=bytes(body),
            received_at=received_at,
        )
        with self._changed:
            self._requests.append(request)
            reply = self._script.popleft() if self._script else Reply()
            self._changed.notify_all()
        if reply.delay > 0 and self._closing is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), reply.delay)
        await self._send(reply, send)

    @staticmethod
    async def _send(reply: Reply, send: Send) -> None:
        names = {name.lower() for name in reply.headers}
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
        if "content-length" not in names:
            headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        view = memoryview(reply.body)
        for start in range(0, len(view), CHUNK_BYTES):
            chunk = bytes(view[start : start + CHUNK_BYTES])
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

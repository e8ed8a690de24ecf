"""The largest request body the API reads, counted as it arrives.

A declared Content-Length over the limit is refused before a byte is read; a body sent without
one (chunked) is counted chunk by chunk and refused once it passes the limit, so no request can
make the API hold more than the limit in memory. `POST /v1/imports` streams files to disk under
its own, larger limit (`import_max_bytes`) and is left to it."""

from collections.abc import Collection

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.problems import problem
from services.core.errors import FieldError

EXEMPT = frozenset({("POST", "/v1/imports")})


class BodyTooLarge(HTTPException):
    """Raised from `receive` while the application reads the body: an HTTPException, so
    FastAPI's body parsing passes it through instead of calling it malformed JSON."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "Content too large")
        self.limit = limit


def _answer(limit: int, path: str) -> Message:
    response = problem(
        413,
        "Content too large",
        f"The request body is larger than the {limit:,} bytes the API accepts "
        "(RETENTION_MAX_BODY_BYTES).",
        [FieldError("body", f"larger than {limit} bytes", "too_large")],
        instance=path,
        max_bytes=limit,
    )
    return {
        "type": "http.response.start",
        "status": 413,
        "headers": response.raw_headers,
        "body": response.body,
    }


class BodySizeLimit:
    def __init__(
        self, app: ASGIApp, max_bytes: int, exempt: Collection[tuple[str, str]] = EXEMPT
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.exempt:
            await self.app(scope, receive, send)
            return
        limit, path = self.max_bytes, scope["path"]
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _send_answer(send, limit, path)
                return

        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            """Once the limit was passed, the answer is the 413, whatever the application
            made of the exception."""
            nonlocal started
            if exceeded:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_answer(send, limit, path)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
            if not started:  # whatever the exception became, the body was too large
                started = True
                await _send_answer(send, limit, path)


async def _send_answer(send: Send, limit: int, path: str) -> None:
    answer = _answer(limit, path)
    body = answer.pop("body")
    await send(answer)
    await send({"type": "http.response.body", "body": body})

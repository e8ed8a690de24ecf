"""Per request: a request id (the client's valid `X-Request-ID`, else a new one) bound to every
log line and echoed in the response, the request histogram by route template, and one access
log line. Plain ASGI, a few microseconds a request: GETs are benchmarked."""

import inspect
import logging
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, iter_route_contexts
from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core import metrics
from services.core.logs import REQUEST_ID_HEADER, request_id_from, reset_request_id, set_request_id

access_log = logging.getLogger("retention.access")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Label values for methods; anything else is `OTHER`, so clients cannot mint new series."""
SCOPE_KEY = "retention.request_id"
UNMATCHED = "unmatched"
"""The route label of a request no route matched (a 404 for an unknown path)."""
_HEADER = REQUEST_ID_HEADER.encode()


def route_templates(app: Any) -> dict[int, str]:
    """The full path template of each route of the app (prefixes of included routers
    included), by the id of the object a matched request names: `scope["route"]` for API
    routes, whose own path lacks the prefixes, `scope["endpoint"]` for plain routes such as
    /docs. Ids, because routes compare by value; the app keeps them alive."""
    templates: dict[int, str] = {}
    for context in iter_route_contexts(app.routes):
        route, template = context.original_route, context.path_format
        if not template:
            continue
        templates.setdefault(id(route), template)
        endpoint = getattr(route, "endpoint", None)
        if endpoint is not None and not isinstance(route, APIRoute):
            templates.setdefault(id(endpoint), template)
    return templates


def _client_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == _HEADER:
            return str(value.decode("latin-1"))
    return None


class Observability:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._series: dict[tuple[str, str, int], Histogram] = {}
        self._templates: dict[int, str] = {}

    def _histogram(self, method: str, route: str, status: int) -> Histogram:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = metrics.HTTP_REQUEST_SECONDS.labels(method, route, str(status))
            self._series[key] = series
        return series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(_client_request_id(scope))
        echoed = (_HEADER, request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        scope[SCOPE_KEY] = request_id
        token = set_request_id(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, started)
            reset_request_id(token)

    def _template(self, scope: Scope) -> str:
        matched = scope.get("route") or scope.get("endpoint")
        if matched is None:
            return UNMATCHED
        template = self._templates.get(id(matched))
        if template is None:  # the first request, or a route added since: look again, once
            self._templates = route_templates(scope["app"])
            found = self._templates.get(id(matched)) or getattr(matched, "path", None)
            template = found if isinstance(found, str) else UNMATCHED
            self._templates[id(matched)] = template
        return template

    def _record(self, scope: Scope, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        route = self._template(scope)
        self._histogram(method, route, status).observe(seconds)
        if access_log.isEnabledFor(logging.INFO):
            state = scope.get("state") or {}
            client = scope.get("client")
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": route,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "api_key_name": state.get("api_key_name"),
                    "client": client[0] if client else None,
                },
            )


def install(app: FastAPI) -> None:
    """Add the middleware, outermost, and give the handler of unexpected errors the request
    id: Starlette calls that handler outside every middleware, after this one has returned."""
    handler = app.exception_handlers.get(Exception)
    if handler is not None:

        async def with_request_id(request: Request, exc: Exception) -> Response:
            request_id = request.scope.get(SCOPE_KEY)
            token = set_request_id(request_id)
            try:
                answer = handler(request, exc)
                response = await answer if inspect.isawaitable(answer) else answer
            finally:
                reset_request_id(token)
            if request_id is not None:
                response.headers[REQUEST_ID_HEADER] = request_id
            return response

        app.add_exception_handler(Exception, with_request_id)
    app.add_middleware(Observability)

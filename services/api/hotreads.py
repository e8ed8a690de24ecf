"""GET by id of the four domain resources, answered before FastAPI's routing and dependency
solving when the answer is a plain success.

Consoles read customers, channels, interactions and tickets by id far more often than anything
else, and FastAPI's machinery (routing, dependency solving, its exception and exit-stack
layers) costs more CPU per such GET than the database read does. This layer runs the same
functions the routes run, `authenticate` and `read_one`, and answers with the same response.
Anything but a success (no key, a refused key, a rate-limited key, an unknown id, a database
error) goes on to the FastAPI app untouched, which answers it with its usual problem+json, so
errors have one source. The routes stay declared in FastAPI: they are the OpenAPI docs, and the
answer to every request this layer passes on."""

import uuid
from dataclasses import dataclass

import asyncpg
from fastapi import Request, Response
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from services.api.auth import authenticate, bearer
from services.api.channels.schemas import ChannelRead
from services.api.customers.schemas import CustomerRead
from services.api.deps import read_one
from services.api.interactions.schemas import InteractionRead
from services.api.rows import RowReader
from services.api.tickets.schemas import TicketRead
from services.core.errors import DomainError
from services.core.models import Base, Channel, Customer, Interaction, Ticket
from services.core.models.enums import Scope as KeyScope


@dataclass(frozen=True)
class HotRead:
    template: str
    model: type[Base]
    schema: type[BaseModel]
    scope: KeyScope = KeyScope.read


HOT_READS = (
    HotRead("/v1/customers/{customer_id}", Customer, CustomerRead),
    HotRead("/v1/channels/{channel_id}", Channel, ChannelRead),
    HotRead("/v1/interactions/{interaction_id}", Interaction, InteractionRead),
    HotRead("/v1/tickets/{ticket_id}", Ticket, TicketRead),
)
"""Each must match its FastAPI route: template, response schema and scope (a test checks)."""

_UUID_LENGTH = 36
_HYPHENS = (8, 13, 18, 23)

_PASSED_ON = (DomainError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
"""What makes this layer hand the request to the app, which answers it on its own."""


def _row_id(text: str) -> uuid.UUID | None:
    """The id in its canonical form only; any other spelling is the route's to judge."""
    if len(text) != _UUID_LENGTH or any(text[i] != "-" for i in _HYPHENS):
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


class HotReads:
    def __init__(self, app: ASGIApp, reads: tuple[HotRead, ...] = HOT_READS) -> None:
        self.app = app
        self._by_prefix = {read.template.rsplit("/", 1)[0] + "/": read for read in reads}
        self._routes: dict[str, BaseRoute] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        cut = path.rfind("/") + 1
        read = self._by_prefix.get(path[:cut])
        row_id = None if read is None else _row_id(path[cut:])
        if read is None or row_id is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self._answer(request, read, row_id)
        if response is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self._route(request, read.template)
        await response(scope, receive, send)

    async def _answer(self, request: Request, read: HotRead, row_id: uuid.UUID) -> Response | None:
        """The route's success response, or None for the app to answer."""
        try:
            principal = await authenticate(request, await bearer(request))
            if read.scope not in principal.scopes:
                return None
            rows: RowReader = request.app.state.rows
            return await read_one(rows, read.model, read.schema, row_id)
        except _PASSED_ON:
            return None

    def _route(self, request: Request, template: str) -> BaseRoute | None:
        """The FastAPI route this request would have matched, for the request metrics' label."""
        route = self._routes.get(template)
        if route is None:
            for context in iter_route_contexts(request.app.routes):
                found = context.original_route
                if (
                    context.path_format == template
                    and isinstance(found, APIRoute)
                    and "GET" in (found.methods or ())
                ):
                    self._routes[template] = route = found
                    break
        return route

import uuid
from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from services.api.auth import Reader, Writer
from services.api.deps import IfMatch, Rows, Session, etag, read_one
from services.api.idempotency import Created, IdempotencyKey, idempotent_create
from services.api.pagination import Cursor, Limit, Page, sort_query
from services.api.problems import V1_RESPONSES, responses
from services.api.tickets import service
from services.api.tickets.schemas import TicketCreate, TicketRead, TicketUpdate
from services.core.models import Ticket
from services.core.models.enums import TicketKind, TicketPriority, TicketStatus

router = APIRouter(prefix="/tickets", tags=["tickets"], responses=V1_RESPONSES)

SortParam = Annotated[str, sort_query("-created_at", service.SORTS)]


@router.get("", response_model=Page[TicketRead], summary="List tickets")
async def list_tickets(
    session: Session,
    _: Reader,
    limit: Limit = 50,
    cursor: Cursor = None,
    sort: SortParam = "-created_at",
    status: TicketStatus | None = None,
    priority: TicketPriority | None = None,
    assignee: str | None = None,
    customer_id: uuid.UUID | None = None,
    channel_id: uuid.UUID | None = None,
    kind: TicketKind | None = None,
) -> Page[TicketRead]:
    filters = service.TicketFilters(status, priority, assignee, customer_id, channel_id, kind)
    rows, next_cursor = await service.list_(session, filters, sort, cursor, limit)
    return Page(items=[TicketRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=TicketRead,
    status_code=status.HTTP_201_CREATED,
    summary="Open a ticket",
    responses=responses(409),
)
async def create_ticket(
    request: Request,
    body: TicketCreate,
    session: Session,
    actor: Writer,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def create() -> Created:
        ticket = await service.create(session, actor, body)
        headers = {"Location": f"/v1/tickets/{ticket.id}", "ETag": etag(ticket.version)}
        return TicketRead.model_validate(ticket), headers

    return await idempotent_create(request, session, actor, idempotency_key, body, create)


@router.get(
    "/{ticket_id}", response_model=TicketRead, summary="Get a ticket", responses=responses(404)
)
async def get_ticket(ticket_id: uuid.UUID, rows: Rows, _: Reader) -> Response:
    return await read_one(rows, Ticket, TicketRead, ticket_id)


@router.patch(
    "/{ticket_id}",
    response_model=TicketRead,
    summary="Update a ticket",
    responses=responses(404, 409, 412),
)
async def update_ticket(
    ticket_id: uuid.UUID,
    body: TicketUpdate,
    session: Session,
    actor: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> TicketRead:
    ticket = await service.update(session, actor, ticket_id, body, if_match)
    response.headers["ETag"] = etag(ticket.version)
    return TicketRead.model_validate(ticket)


@router.delete(
    "/{ticket_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a ticket",
    description="Deletes the ticket for good (audited); the customer's score is recomputed "
    "without it.",
    responses=responses(404),
)
async def delete_ticket(ticket_id: uuid.UUID, session: Session, actor: Writer) -> Response:
    await service.delete_(session, actor, ticket_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

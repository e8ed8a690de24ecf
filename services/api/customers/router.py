import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from services.api.auth import Reader, Writer
from services.api.customers import batch, service
from services.api.customers.schemas import (
    BatchResult,
    ChannelHistory,
    CustomerBatch,
    CustomerCreate,
    CustomerListItem,
    CustomerRead,
    CustomerUpdate,
    MembershipRead,
)
from services.api.deps import IfMatch, ReadSession, Rows, Session, etag, read_one
from services.api.idempotency import Created, IdempotencyKey, idempotent_create
from services.api.pagination import Cursor, Limit, Page, sort_query
from services.api.problems import V1_RESPONSES, responses
from services.api.scoring import health
from services.api.scoring.schemas import (
    BandQuery,
    CustomerHealthRead,
    HealthHistoryRead,
    ScoreMax,
    ScoreMin,
    Since,
    Until,
)
from services.core.models import Customer
from services.core.models.enums import LifecycleStage, ValueTier

router = APIRouter(prefix="/customers", tags=["customers"], responses=V1_RESPONSES)

SortParam = Annotated[str, sort_query("-created_at", service.SORTS)]


def customer_filters(
    channel_id: uuid.UUID | None = None,
    owner: str | None = None,
    tier: Annotated[ValueTier | None, Query(description="Value tier.")] = None,
    lifecycle_stage: LifecycleStage | None = None,
    tag: str | None = None,
    created_after: Annotated[
        AwareDatetime | None, Query(description="Only customers created at or after this time.")
    ] = None,
    created_before: Annotated[
        AwareDatetime | None, Query(description="Only customers created before this time.")
    ] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in name or external_ref.")
    ] = None,
    include_archived: bool = False,
    band: BandQuery = None,
    score_min: ScoreMin = None,
    score_max: ScoreMax = None,
) -> service.CustomerFilters:
    """`GET /v1/customers`'s filters."""
    return service.CustomerFilters(
        channel_id,
        owner,
        tier,
        lifecycle_stage,
        tag,
        created_after,
        created_before,
        q,
        include_archived,
        band,
        score_min,
        score_max,
    )


@router.get(
    "",
    response_model=Page[CustomerListItem],
    summary="List customers",
    description="Each item carries its current `health` (null before the first score). "
    "Sorting by `score` puts unscored customers last when descending, first when ascending.",
)
async def list_customers(
    session: Session,
    _: Reader,
    filters: Annotated[service.CustomerFilters, Depends(customer_filters)],
    limit: Limit = 50,
    cursor: Cursor = None,
    sort: SortParam = "-created_at",
) -> Page[CustomerListItem]:
    items, next_cursor = await service.list_(session, filters, sort, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "",
    response_model=CustomerRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create a customer",
    responses=responses(409),
)
async def create_customer(
    request: Request,
    body: CustomerCreate,
    session: Session,
    actor: Writer,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def create() -> Created:
        customer = await service.create(session, actor, body)
        headers = {"Location": f"/v1/customers/{customer.id}", "ETag": etag(customer.version)}
        return CustomerRead.model_validate(customer), headers

    return await idempotent_create(request, session, actor, idempotency_key, body, create)


@router.post(
    "/batch",
    response_model=BatchResult,
    summary="Create or update customers in bulk",
    description="Upserts up to 1,000 customers by `external_ref` in one transaction. Each item "
    "is validated on its own: the answer is 200 with one result per item, in request order "
    "(`created`, `updated`, `unchanged` or `error` with the fields named as `items.N.field`). "
    "An existing customer keeps the fields its item omits; archived customers stay archived.",
)
async def upsert_customers(body: CustomerBatch, session: Session, actor: Writer) -> BatchResult:
    return await batch.upsert(session, actor, body.items)


@router.get(
    "/{customer_id}",
    response_model=CustomerRead,
    summary="Get a customer",
    responses=responses(404),
)
async def get_customer(customer_id: uuid.UUID, rows: Rows, _: Reader) -> Response:
    return await read_one(rows, Customer, CustomerRead, customer_id)


@router.get(
    "/{customer_id}/channel-history",
    response_model=ChannelHistory,
    summary="List a customer's channel memberships",
    description="Every channel the customer has belonged to, newest first; the current one "
    "has no `ended_at`.",
    responses=responses(404),
)
async def get_channel_history(
    customer_id: uuid.UUID, session: Session, _: Reader
) -> ChannelHistory:
    rows = await service.channel_history(session, customer_id)
    return ChannelHistory(items=[MembershipRead.model_validate(r) for r in rows])


@router.get(
    "/{customer_id}/health",
    response_model=CustomerHealthRead,
    summary="Get a customer's health score",
    description="The current score, its band, trend and the contribution of every factor. "
    "404 when the customer does not exist, and also (with a detail saying so) when it is not "
    "scored yet.",
    responses=responses(404),
)
async def get_customer_health(customer_id: uuid.UUID, rows: Rows, _: Reader) -> Response:
    return await health.customer_health(rows, customer_id)


@router.get(
    "/{customer_id}/health/history",
    response_model=Page[HealthHistoryRead],
    summary="List a customer's past health scores",
    description="Newest `as_of` first: a row whenever the score or band changed, and at "
    "least one a day while anything changes.",
    responses=responses(404),
)
async def list_customer_health_history(
    customer_id: uuid.UUID,
    session: ReadSession,
    _: Reader,
    limit: Limit = 50,
    cursor: Cursor = None,
    since: Since = None,
    until: Until = None,
) -> Page[HealthHistoryRead]:
    rows, next_cursor = await health.customer_history(
        session, customer_id, (since, until), cursor, limit
    )
    return Page(items=[HealthHistoryRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.patch(
    "/{customer_id}",
    response_model=CustomerRead,
    summary="Update a customer",
    responses=responses(404, 409, 412),
)
async def update_customer(
    customer_id: uuid.UUID,
    body: CustomerUpdate,
    session: Session,
    actor: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> CustomerRead:
    customer = await service.update(session, actor, customer_id, body, if_match)
    response.headers["ETag"] = etag(customer.version)
    return CustomerRead.model_validate(customer)


@router.delete(
    "/{customer_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Archive a customer",
    description="Customers stay referenced by interactions, tickets and scores, so deleting "
    "archives: the customer leaves lists (unless `include_archived=true`) but can still be "
    "read by id.",
    responses=responses(404),
)
async def archive_customer(customer_id: uuid.UUID, session: Session, actor: Writer) -> Response:
    await service.archive(session, actor, customer_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

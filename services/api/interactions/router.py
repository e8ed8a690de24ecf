import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from services.api.auth import Reader, Writer
from services.api.deps import Rows, Session, read_one
from services.api.idempotency import Created, IdempotencyKey, idempotent_create
from services.api.interactions import batch, service
from services.api.interactions.schemas import (
    InteractionBatch,
    InteractionBatchResult,
    InteractionCreate,
    InteractionRead,
)
from services.api.pagination import Cursor, Limit, Page, sort_query
from services.api.problems import V1_RESPONSES, responses
from services.core.models import Interaction
from services.core.models.enums import InteractionKind

router = APIRouter(prefix="/interactions", tags=["interactions"], responses=V1_RESPONSES)

SortParam = Annotated[str, sort_query("-occurred_at", service.SORTS)]


class _AlreadyStored(Exception):
    """Raised out of the idempotent create so that nothing is remembered for a no-op."""

    def __init__(self, interaction: Interaction) -> None:
        self.interaction = interaction


def interaction_filters(
    customer_id: uuid.UUID | None = None,
    channel_id: uuid.UUID | None = None,
    kind: InteractionKind | None = None,
    external_id: str | None = None,
    occurred_after: Annotated[
        AwareDatetime | None, Query(description="Only interactions at or after this time.")
    ] = None,
    occurred_before: Annotated[
        AwareDatetime | None, Query(description="Only interactions before this time.")
    ] = None,
) -> service.InteractionFilters:
    """`GET /v1/interactions`'s filters."""
    return service.InteractionFilters(
        customer_id, channel_id, kind, external_id, occurred_after, occurred_before
    )


@router.get("", response_model=Page[InteractionRead], summary="List interactions")
async def list_interactions(
    session: Session,
    _: Reader,
    filters: Annotated[service.InteractionFilters, Depends(interaction_filters)],
    limit: Limit = 50,
    cursor: Cursor = None,
    sort: SortParam = "-occurred_at",
) -> Page[InteractionRead]:
    rows, next_cursor = await service.list_(session, filters, sort, cursor, limit)
    return Page(items=[InteractionRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=InteractionRead,
    status_code=status.HTTP_201_CREATED,
    summary="Record an interaction",
    description="Answers 201 with the new interaction. When an interaction with the same "
    "`external_id` is already stored, nothing is written and the answer is 200 with the stored "
    "one, so re-sending an event is safe.",
    responses={200: {"model": InteractionRead, "description": "Already stored (same external_id)"}},
)
async def create_interaction(
    request: Request,
    body: InteractionCreate,
    session: Session,
    actor: Writer,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    currency: str = request.app.state.settings.default_currency

    async def create() -> Created:
        interaction, created = await service.create(session, actor, body, currency)
        if not created:
            raise _AlreadyStored(interaction)
        headers = {"Location": f"/v1/interactions/{interaction.id}"}
        return InteractionRead.model_validate(interaction), headers

    try:
        return await idempotent_create(request, session, actor, idempotency_key, body, create)
    except _AlreadyStored as stored:
        found = InteractionRead.model_validate(stored.interaction).model_dump(mode="json")
        headers = {"Location": f"/v1/interactions/{stored.interaction.id}"}
        return JSONResponse(found, status_code=status.HTTP_200_OK, headers=headers)


@router.post(
    "/batch",
    response_model=InteractionBatchResult,
    summary="Record up to 1,000 interactions",
    description="Each item is checked on its own and reported by its index: `created`, "
    "`duplicate` (its `external_id` is already stored; `id` is the stored one) or `error` "
    "(`errors` names each field as `items.<index>.<field>`). Valid items are stored even when "
    "others are not; an `external_id` repeated within the batch is an error on the later item.",
)
async def create_interaction_batch(
    request: Request, body: InteractionBatch, session: Session, actor: Writer
) -> Response:
    currency: str = request.app.state.settings.default_currency
    months = request.app.state.months
    result = await batch.ingest(session, actor, body.items, currency, months)
    # serialised directly: this is the throughput path and the data is already plain
    return Response(orjson.dumps(result, default=str), media_type="application/json")


@router.get(
    "/{interaction_id}",
    response_model=InteractionRead,
    summary="Get an interaction",
    responses=responses(404),
)
async def get_interaction(interaction_id: uuid.UUID, rows: Rows, _: Reader) -> Response:
    return await read_one(rows, Interaction, InteractionRead, interaction_id)


@router.delete(
    "/{interaction_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a mistaken interaction",
    description="Interactions are immutable; a wrong one is deleted for good (audited) and the "
    "customer's score is recomputed without it.",
    responses=responses(404),
)
async def delete_interaction(
    interaction_id: uuid.UUID, session: Session, actor: Writer
) -> Response:
    await service.delete_(session, actor, interaction_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

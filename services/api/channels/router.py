import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse

from services.api.auth import Reader, Writer
from services.api.channels import service
from services.api.channels.schemas import (
    ChannelCreate,
    ChannelListItem,
    ChannelRead,
    ChannelUpdate,
)
from services.api.deps import IfMatch, ReadSession, Rows, Session, etag, read_one
from services.api.idempotency import Created, IdempotencyKey, idempotent_create
from services.api.pagination import Cursor, Limit, Page, sort_query
from services.api.problems import V1_RESPONSES, responses
from services.api.scoring import health
from services.api.scoring.schemas import (
    BandQuery,
    ChannelHealthRead,
    HealthHistoryRead,
    ScoreMax,
    ScoreMin,
    Since,
    Until,
)
from services.core.models import Channel
from services.core.models.enums import ChannelStatus, ChannelTier, ChannelType

router = APIRouter(prefix="/channels", tags=["channels"], responses=V1_RESPONSES)

SortParam = Annotated[str, sort_query("-created_at", service.SORTS)]


@router.get(
    "",
    response_model=Page[ChannelListItem],
    summary="List channels",
    description="Each item carries its current `health` (null before the first score). "
    "Sorting by `score` puts unscored channels last when descending, first when ascending.",
)
async def list_channels(
    session: Session,
    _: Reader,
    limit: Limit = 50,
    cursor: Cursor = None,
    sort: SortParam = "-created_at",
    type: ChannelType | None = None,
    tier: ChannelTier | None = None,
    status: ChannelStatus | None = None,
    region: str | None = None,
    owner: str | None = None,
    tag: str | None = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in name or external_ref.")
    ] = None,
    include_archived: bool = False,
    band: BandQuery = None,
    score_min: ScoreMin = None,
    score_max: ScoreMax = None,
) -> Page[ChannelListItem]:
    filters = service.ChannelFilters(
        type, tier, status, region, owner, tag, q, include_archived, band, score_min, score_max
    )
    items, next_cursor = await service.list_(session, filters, sort, cursor, limit)
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "",
    response_model=ChannelRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create a channel",
    responses=responses(409),
)
async def create_channel(
    request: Request,
    body: ChannelCreate,
    session: Session,
    actor: Writer,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def create() -> Created:
        channel = await service.create(session, actor, body)
        headers = {"Location": f"/v1/channels/{channel.id}", "ETag": etag(channel.version)}
        return ChannelRead.model_validate(channel), headers

    return await idempotent_create(request, session, actor, idempotency_key, body, create)


@router.get(
    "/{channel_id}", response_model=ChannelRead, summary="Get a channel", responses=responses(404)
)
async def get_channel(channel_id: uuid.UUID, rows: Rows, _: Reader) -> Response:
    return await read_one(rows, Channel, ChannelRead, channel_id)


@router.get(
    "/{channel_id}/health",
    response_model=ChannelHealthRead,
    summary="Get a channel's health score",
    description="The current score from its customers (revenue-weighted), its own activity and "
    "its ticket load, with the contribution of each. 404 when the channel does not exist, and "
    "also (with a detail saying so) when it is not scored yet.",
    responses=responses(404),
)
async def get_channel_health(channel_id: uuid.UUID, rows: Rows, _: Reader) -> Response:
    return await health.channel_health(rows, channel_id)


@router.get(
    "/{channel_id}/health/history",
    response_model=Page[HealthHistoryRead],
    summary="List a channel's past health scores",
    description="Newest `as_of` first: a row whenever the score or band changed, and at "
    "least one a day while anything changes.",
    responses=responses(404),
)
async def list_channel_health_history(
    channel_id: uuid.UUID,
    session: ReadSession,
    _: Reader,
    limit: Limit = 50,
    cursor: Cursor = None,
    since: Since = None,
    until: Until = None,
) -> Page[HealthHistoryRead]:
    rows, next_cursor = await health.channel_history(
        session, channel_id, (since, until), cursor, limit
    )
    return Page(items=[HealthHistoryRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.patch(
    "/{channel_id}",
    response_model=ChannelRead,
    summary="Update a channel",
    responses=responses(404, 409, 412),
)
async def update_channel(
    channel_id: uuid.UUID,
    body: ChannelUpdate,
    session: Session,
    actor: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> ChannelRead:
    channel = await service.update(session, actor, channel_id, body, if_match)
    response.headers["ETag"] = etag(channel.version)
    return ChannelRead.model_validate(channel)


@router.delete(
    "/{channel_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Archive a channel",
    description="Channels stay referenced by history, so deleting archives: the channel leaves "
    "lists (unless `include_archived=true`) but can still be read by id.",
    responses=responses(404),
)
async def archive_channel(channel_id: uuid.UUID, session: Session, actor: Writer) -> Response:
    await service.archive(session, actor, channel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

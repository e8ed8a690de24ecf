import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse

from services.api.auth import Reader, Writer
from services.api.channels import service
from services.api.channels.schemas import ChannelCreate, ChannelRead, ChannelUpdate
from services.api.deps import IfMatch, Rows, Session, etag, read_one
from services.api.idempotency import Created, IdempotencyKey, idempotent_create
from services.api.pagination import Cursor, Limit, Page, sort_query
from services.api.problems import V1_RESPONSES, responses
from services.core.models import Channel
from services.core.models.enums import ChannelStatus, ChannelTier, ChannelType

router = APIRouter(prefix="/channels", tags=["channels"], responses=V1_RESPONSES)

SortParam = Annotated[str, sort_query("-created_at", service.SORTS)]


@router.get("", response_model=Page[ChannelRead], summary="List channels")
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
) -> Page[ChannelRead]:
    filters = service.ChannelFilters(type, tier, status, region, owner, tag, q, include_archived)
    rows, next_cursor = await service.list_(session, filters, sort, cursor, limit)
    return Page(items=[ChannelRead.model_validate(r) for r in rows], next_cursor=next_cursor)


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

import uuid

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy import select

from services.api.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from services.api.auth import Admin
from services.api.deps import Session
from services.api.idempotency import Created, IdempotencyKey, idempotent_create
from services.api.pagination import Cursor, Limit, Page, fetch_page
from services.api.problems import V1_RESPONSES, responses
from services.core import audit
from services.core.api_keys import create_api_key, revoke_api_key
from services.core.errors import NotFound
from services.core.models import ApiKey

router = APIRouter(prefix="/api-keys", tags=["api-keys"], responses=V1_RESPONSES)

RESOURCE = "api_key"


@router.get("", response_model=Page[ApiKeyRead], summary="List API keys")
async def list_api_keys(
    session: Session,
    _: Admin,
    limit: Limit = 50,
    cursor: Cursor = None,
    include_revoked: bool = False,
) -> Page[ApiKeyRead]:
    query = select(ApiKey)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    columns = {"created_at": ApiKey.created_at, "id": ApiKey.id}
    rows, next_cursor = await fetch_page(session, query, "created_at", columns, cursor, limit)
    return Page(items=[ApiKeyRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key",
    description="The answer holds the secret `key`; it is never shown again. A key may "
    "expire (`expires_at`) and may have its own rate limit (`rate_limit_per_minute`).",
)
async def create_key(
    request: Request,
    body: ApiKeyCreate,
    session: Session,
    actor: Admin,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    async def create() -> Created:
        new = await create_api_key(
            session, body.name, set(body.scopes), body.expires_at, body.rate_limit_per_minute
        )
        read = ApiKeyRead.model_validate(new.record)
        await audit.record(
            session, actor, "create", RESOURCE, new.record.id, None, read.model_dump(mode="json")
        )
        return ApiKeyCreated(**read.model_dump(), key=new.key), {}

    return await idempotent_create(
        request, session, actor, idempotency_key, body, create, sealed=("key",)
    )


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key",
    description="Takes effect within a second in every API process.",
    responses=responses(404),
)
async def revoke_key(
    request: Request, key_id: uuid.UUID, session: Session, actor: Admin
) -> Response:
    record = await session.get(ApiKey, key_id, with_for_update=True)
    if record is None:
        raise NotFound(f"API key {key_id} does not exist.")
    before = ApiKeyRead.model_validate(record).model_dump(mode="json")
    await revoke_api_key(session, record)
    after = ApiKeyRead.model_validate(record).model_dump(mode="json")
    await audit.record(session, actor, "revoke", RESOURCE, key_id, before, after)
    request.app.state.key_cache.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)

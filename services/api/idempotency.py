"""`Idempotency-Key` on creates: the first response is stored with the write and replayed."""

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.core import jsontext
from services.core.audit import Actor
from services.core.crypto import SecretBox, UndecryptableSecret
from services.core.errors import Conflict, FieldError, InvalidInput
from services.core.models import IdempotencyRecord

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Any unique string; a retry with the same key and body replays the "
        "first response instead of creating again (kept 24 hours).",
    ),
]

Created = tuple[BaseModel, dict[str, str]]


def _fingerprint(request: Request, body: BaseModel) -> str:
    value = [request.method, request.url.path, body.model_dump(mode="json")]
    return hashlib.sha256(jsontext.dumps(value, sort_keys=True)).hexdigest()


async def idempotent_create(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    key: str | None,
    body: BaseModel,
    create: Callable[[], Awaitable[Created]],
    status_code: int = 201,
    sealed: tuple[str, ...] = (),
) -> JSONResponse:
    """Run `create` once per (API key, Idempotency-Key); replay its answer on a retry. The
    answer's `sealed` fields (secrets shown once) are stored encrypted."""
    if key is None or actor.id is None:
        result, headers = await create()
        return _response(status_code, result.model_dump(mode="json"), headers)

    fingerprint = _fingerprint(request, body)
    ttl = timedelta(hours=request.app.state.settings.idempotency_ttl_hours)
    stored = await session.get(IdempotencyRecord, (actor.id, key))
    if stored is not None and stored.created_at < datetime.now(UTC) - ttl:
        await session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.api_key_id == actor.id, IdempotencyRecord.key == key
            )
        )
        stored = None
    if stored is not None:
        if stored.request_hash != fingerprint:
            raise InvalidInput(
                "This Idempotency-Key was used with another request.",
                [FieldError("header.Idempotency-Key", "reused with a different body", "reused")],
            )
        headers = {**stored.response_headers, "Idempotent-Replayed": "true"}
        body = _unseal(request, stored.response_body, sealed)
        return _response(stored.status_code, body, headers)

    result, headers = await create()
    payload = result.model_dump(mode="json")
    claimed = await session.scalar(
        insert(IdempotencyRecord)
        .values(
            api_key_id=actor.id,
            key=key,
            method=request.method,
            path=request.url.path,
            request_hash=fingerprint,
            status_code=status_code,
            response_body=_seal(request, payload, sealed),
            response_headers=headers,
        )
        .on_conflict_do_nothing()
        .returning(IdempotencyRecord.key)
    )
    if claimed is None:
        raise Conflict(
            "Another request with this Idempotency-Key is in flight; retry it shortly.",
            [FieldError("header.Idempotency-Key", "concurrent use", "in_flight")],
        )
    return _response(status_code, payload, headers)


def _seal(request: Request, payload: Any, sealed: tuple[str, ...]) -> Any:
    if not sealed:
        return payload
    box: SecretBox = request.app.state.secret_box
    return {**payload, **{name: box.encrypt(payload[name]) for name in sealed}}


def _unseal(request: Request, stored: Any, sealed: tuple[str, ...]) -> Any:
    if not sealed:
        return stored
    box: SecretBox = request.app.state.secret_box
    try:
        return {**stored, **{name: box.decrypt(stored[name]) for name in sealed}}
    except UndecryptableSecret:
        raise Conflict(
            "The request with this Idempotency-Key succeeded, but its answer holds a secret "
            "encrypted under a key this deployment no longer has, so it cannot be replayed.",
            [FieldError("header.Idempotency-Key", "answer unreadable", "undecryptable")],
        ) from None


def _response(status_code: int, payload: Any, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(payload, status_code=status_code, headers=headers)

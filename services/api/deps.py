"""Request-scoped dependencies: the session that commits at the boundary, and If-Match."""

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.rows import RowReader
from services.core.db import session_scope
from services.core.errors import NotFound, PreconditionFailed
from services.core.models import Base


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with session_scope(request.app.state.sessionmaker) as session:
        yield session


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.read_sessionmaker() as session:
        yield session


async def _rows(request: Request) -> RowReader:
    rows: RowReader = request.app.state.rows
    return rows


# scope="function": commit before the response goes out, so a failed commit is the answer.
Session = Annotated[AsyncSession, Depends(_session, scope="function")]
# For endpoints that run one SELECT: no transaction, so no BEGIN/COMMIT round trips.
ReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]
Rows = Annotated[RowReader, Depends(_rows)]


def json_response(
    schema: type[BaseModel], row: Mapping[str, Any], headers: dict[str, str]
) -> Response:
    """A row rendered through its read schema in one pass, for the hottest reads: FastAPI's
    `response_model` would validate the returned model a second time."""
    body = schema.model_validate(dict(row)).model_dump_json()
    return Response(body, media_type="application/json", headers=headers)


async def read_one(
    rows: RowReader, model: type[Base], schema: type[BaseModel], row_id: uuid.UUID
) -> Response:
    """GET by id: the row through its read schema, with its ETag when it is versioned."""
    row = await rows.by_id(model, row_id)
    if row is None:
        raise NotFound(f"{model.__name__} {row_id} does not exist.")
    headers = {"ETag": etag(row["version"])} if "version" in row else {}
    return json_response(schema, row, headers)


def etag(version: int) -> str:
    return f'"{version}"'


def check_if_match(if_match: str | None, version: int) -> None:
    """Optimistic concurrency: a PATCH naming the version it read fails if that is stale."""
    if if_match is None:
        return
    tags = [t.strip() for t in if_match.split(",")]
    if "*" not in tags and etag(version) not in tags:
        raise PreconditionFailed(
            "The resource changed since you read it; fetch it again and retry.",
            extra={"current_etag": etag(version)},
        )


IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='The ETag from your last read, e.g. `"3"`; `*` skips the check.',
    ),
]

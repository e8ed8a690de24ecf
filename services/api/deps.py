"""Request-scoped dependencies: the session that commits at the boundary, and If-Match."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.db import session_scope
from services.core.errors import PreconditionFailed


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with session_scope(request.app.state.sessionmaker) as session:
        yield session


# scope="function": commit before the response goes out, so a failed commit is the answer.
Session = Annotated[AsyncSession, Depends(_session, scope="function")]


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

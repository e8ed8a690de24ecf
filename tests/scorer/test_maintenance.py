from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.api_keys import create_api_key
from services.core.config import Settings
from services.core.db import session_scope
from services.core.models import IdempotencyRecord
from services.core.models.enums import Scope
from services.scorer.jobs.maintenance import purge_idempotency_records
from tests.helpers import count_rows


async def test_purge_drops_only_expired_records(
    app: FastAPI, settings: Settings, engine: AsyncEngine
) -> None:
    async with session_scope(app.state.sessionmaker) as session:
        key = await create_api_key(session, "k", {Scope.write})
        now = datetime.now(UTC)
        await session.execute(
            insert(IdempotencyRecord),
            [
                {
                    "api_key_id": key.record.id,
                    "key": name,
                    "method": "POST",
                    "path": "/v1/channels",
                    "request_hash": "0" * 64,
                    "status_code": 201,
                    "response_body": {},
                    "response_headers": {},
                    "created_at": now - age,
                }
                for name, age in (("old", timedelta(hours=25)), ("fresh", timedelta(hours=1)))
            ],
        )
    ctx = {"settings": settings, "sessionmaker": app.state.sessionmaker}
    assert await purge_idempotency_records(ctx) == 1
    assert await purge_idempotency_records(ctx) == 0
    assert await count_rows(engine, "idempotency_records", "key = 'fresh'") == 1
    assert await count_rows(engine, "idempotency_records") == 1

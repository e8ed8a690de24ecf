"""Liveness and readiness probes; open, no API key."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

router = APIRouter(tags=["ops"])


class Health(BaseModel):
    status: str = Field(description="`ok` when every check passed.")
    checks: dict[str, str] = Field(
        default={}, description="PostgreSQL and Redis, `ok` or the error."
    )
    worker: str | None = Field(
        default=None,
        description="The scoring worker's last health report, or null when no worker reported "
        "in the last few seconds. Informational: the API serves without a worker.",
    )


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="PostgreSQL and Redis are reachable",
    responses={503: {"model": Health, "description": "A dependency is down"}},
)
async def readyz(request: Request) -> Any:
    checks: dict[str, str] = {}
    try:
        async with request.app.state.sessionmaker() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await request.app.state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"error: {type(exc).__name__}"
    worker = None
    if checks["redis"] == "ok":
        report = await request.app.state.redis.get(request.app.state.settings.worker_health_key)
        worker = report.decode() if report else None
    ok = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks, worker=worker)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

"""`GET /v1/exports/{customers,interactions,alerts,scores}`: a list's rows, all of them, as one
streamed CSV or NDJSON download."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from services.api.alerts.router import alert_filters
from services.api.alerts.service import AlertFilters
from services.api.auth import Reader
from services.api.customers.router import customer_filters
from services.api.customers.service import CustomerFilters
from services.api.exports import kinds, stream
from services.api.exports.encoding import MEDIA_TYPES, ExportFormat
from services.api.exports.params import export_format
from services.api.interactions.router import interaction_filters
from services.api.interactions.service import InteractionFilters
from services.api.problems import PROBLEM_JSON, V1_RESPONSES, Problem

router = APIRouter(prefix="/exports", tags=["exports"], responses=V1_RESPONSES)

Format = Annotated[ExportFormat, Depends(export_format)]


async def _resources() -> AsyncIterator[AsyncExitStack]:
    """Closed once the response is sent (or fails): the export's connection lives as long as
    its stream, and is taken only after the key and the filters passed."""
    async with AsyncExitStack() as stack:
        yield stack


Resources = Annotated[AsyncExitStack, Depends(_resources)]

COMMON = (
    "Streamed as it is read (constant memory on both ends), in one database snapshot. "
    "Choose the format with `format=csv|ndjson` or the Accept header (`text/csv`, "
    "`application/x-ndjson`); CSV is the default. CSV has a header row, an empty cell for "
    "null, times in UTC ISO 8601, and tags, attributes and other structured values as JSON "
    "text; NDJSON has one object per line with the same keys and typed values. Bad filters "
    "answer 422 naming the parameter, before anything is streamed."
)


def _responses(csv_example: str, ndjson_example: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "The rows, streamed; `Content-Disposition` names a file.",
            "content": {
                MEDIA_TYPES[ExportFormat.csv]: {
                    "schema": {"type": "string"},
                    "example": csv_example,
                },
                MEDIA_TYPES[ExportFormat.ndjson]: {
                    "schema": {"type": "string"},
                    "example": ndjson_example,
                },
            },
        },
        406: {
            "model": Problem,
            "content": {PROBLEM_JSON: {}},
            "description": "The Accept header names neither format (and no `format` was given)",
        },
    }


async def _stream(
    request: Request, resources: AsyncExitStack, export: kinds.Export, format_: ExportFormat
) -> StreamingResponse:
    conn = await resources.enter_async_context(request.app.state.engine.connect())
    body = await stream.start(conn, export, format_)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    filename = f"{export.kind}-{stamp}.{format_}"
    return StreamingResponse(
        body,
        media_type=MEDIA_TYPES[format_],
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/customers",
    response_class=StreamingResponse,
    summary="Export customers",
    description="Every customer `GET /v1/customers` would list with the same filters, oldest "
    "`created_at` first (then `id`). Columns: `id`, `external_ref`, `name`, `email`, `phone`, "
    "`address`, `owner`, `channel_id`, `value_tier`, `lifecycle_stage`, `tags`, `attributes`, "
    "`birthday`, `contract_end`, `notes`, `archived_at`, `created_at`, `updated_at`, "
    "`version`, `health_score`, `health_band`, `health_as_of` (the last three empty before "
    "the first score). " + COMMON,
    responses=_responses(
        "id,external_ref,name,…,tags,attributes,…,health_score,health_band,health_as_of\r\n"
        '0196f5d2-9a10-7c44-8e21-5b6c7d8e9f01,CRM-1,张敏,…,"[""vip"",""华东""]",'
        '"{""seats"":12}",…,63.5,yellow,2026-02-01T09:00:00Z\r\n',
        '{"id":"0196f5d2-9a10-7c44-8e21-5b6c7d8e9f01","external_ref":"CRM-1","name":"张敏",'
        '…,"tags":["vip","华东"],"attributes":{"seats":12},…,"health_score":63.5,'
        '"health_band":"yellow","health_as_of":"2026-02-01T09:00:00Z"}\n',
    ),
)
async def export_customers(
    request: Request,
    _: Reader,
    resources: Resources,
    format_: Format,
    filters: Annotated[CustomerFilters, Depends(customer_filters)],
) -> StreamingResponse:
    return await _stream(request, resources, kinds.customers(filters), format_)


@router.get(
    "/interactions",
    response_class=StreamingResponse,
    summary="Export interactions",
    description="Every interaction `GET /v1/interactions` would list with the same filters, "
    "oldest `occurred_at` first (then `id`). Columns: `id`, `customer_id`, `channel_id`, "
    "`kind`, `occurred_at`, `amount` (a decimal string), `currency`, `satisfaction`, `nps`, "
    "`external_id`, `summary`, `attributes`, `created_at`. " + COMMON,
    responses=_responses(
        "id,customer_id,channel_id,kind,occurred_at,amount,currency,…\r\n"
        "0196f5d3-…,0196f5d2-…,0196f5d2-…,order,2026-01-15T10:30:00Z,1280.0000,CNY,…\r\n",
        '{"id":"0196f5d3-…","customer_id":"0196f5d2-…","kind":"order",'
        '"occurred_at":"2026-01-15T10:30:00Z","amount":"1280.0000","currency":"CNY",…}\n',
    ),
)
async def export_interactions(
    request: Request,
    _: Reader,
    resources: Resources,
    format_: Format,
    filters: Annotated[InteractionFilters, Depends(interaction_filters)],
) -> StreamingResponse:
    return await _stream(request, resources, kinds.interactions(filters), format_)


@router.get(
    "/alerts",
    response_class=StreamingResponse,
    summary="Export alerts",
    description="Every alert `GET /v1/alerts` would list with the same filters, oldest "
    "`opened_at` first (then `id`). Columns: `id`, `rule_id`, `rule_name`, `subject`, "
    "`subject_id`, `channel_id`, `severity`, `status`, `reason`, `owner`, `due_at`, "
    "`opened_at`, `last_fired_at`, `fire_count`, `acknowledged_at`, `acknowledged_by`, "
    "`closed_at`, `closed_by`, `updated_at`, `version`. " + COMMON,
    responses=_responses(
        "id,rule_id,rule_name,subject,subject_id,channel_id,severity,status,reason,owner,…\r\n"
        '0196f5d4-…,0196f5d1-…,Customer turned red,customer,0196f5d2-…,,high,open,"{""band"":'
        '""red""}",li.wei,…\r\n',
        '{"id":"0196f5d4-…","rule_name":"Customer turned red","status":"open",'
        '"reason":{"band":"red"},"owner":"li.wei",…}\n',
    ),
)
async def export_alerts(
    request: Request,
    _: Reader,
    resources: Resources,
    format_: Format,
    filters: Annotated[AlertFilters, Depends(alert_filters)],
) -> StreamingResponse:
    return await _stream(request, resources, kinds.alerts(filters), format_)


@router.get(
    "/scores",
    response_class=StreamingResponse,
    summary="Export current customer health scores",
    description="The current score of every customer `GET /v1/customers` would list with "
    "the same filters and that is scored, oldest customer first. Columns: `customer_id`, "
    "`external_ref`, `name`, `channel_id`, `owner`, `value_tier`, `lifecycle_stage`, "
    "`score`, `band`, `trend`, `as_of`, `profile_version`, `contributions` (points per "
    "factor), `computed_at`. " + COMMON,
    responses=_responses(
        "customer_id,external_ref,name,…,score,band,trend,as_of,profile_version,contributions,"
        "computed_at\r\n0196f5d2-…,CRM-1,张敏,…,63.5,yellow,-8.5,2026-02-01T09:00:00Z,2,"
        '"{""recency"":7.0,""frequency"":27.5}",2026-02-01T09:00:02Z\r\n',
        '{"customer_id":"0196f5d2-…","score":63.5,"band":"yellow","trend":-8.5,'
        '"as_of":"2026-02-01T09:00:00Z","profile_version":2,"contributions":{"recency":7.0},…}\n',
    ),
)
async def export_scores(
    request: Request,
    _: Reader,
    resources: Resources,
    format_: Format,
    filters: Annotated[CustomerFilters, Depends(customer_filters)],
) -> StreamingResponse:
    return await _stream(request, resources, kinds.scores(filters), format_)

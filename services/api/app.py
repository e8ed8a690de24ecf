"""The FastAPI application: lifespan resources, routers and error handlers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from services.api import observability, problems
from services.api.alerts.router import alert_rules_router, alerts_router, owners_router
from services.api.api_keys.router import router as api_keys_router
from services.api.audit.router import router as audit_router
from services.api.auth import KeyCache
from services.api.bodylimit import BodySizeLimit
from services.api.channels.router import router as channels_router
from services.api.customers.router import router as customers_router
from services.api.exports.router import router as exports_router
from services.api.hotreads import HotReads
from services.api.imports.router import router as imports_router
from services.api.interactions.months import Months
from services.api.interactions.router import router as interactions_router
from services.api.jobs.router import router as jobs_router
from services.api.ops.metrics import router as metrics_router
from services.api.ops.router import router as ops_router
from services.api.ratelimit import RateLimiter, RateLimitHeaders
from services.api.reports.router import router as retention_reports_router
from services.api.rows import RowReader, create_pool
from services.api.scoring.router import router as scoring_router
from services.api.sla.router import reports_router, sla_policies_router
from services.api.tickets.router import router as tickets_router
from services.api.webhooks.router import deliveries_router as webhook_deliveries_router
from services.api.webhooks.router import router as webhooks_router
from services.core.config import Settings, get_settings
from services.core.crypto import load_box
from services.core.db import create_engine, create_read_sessionmaker, create_sessionmaker
from services.core.heap import freeze_startup_objects

DESCRIPTION = """
The system of record for customers and sales channels, and their early-warning system.

* Every `/v1` endpoint needs `Authorization: Bearer <API key>`; keys carry scopes
  `read`, `write` (includes read) and `admin` (includes both).
* Errors are RFC 9457 `application/problem+json`; `errors` names each bad field.
* Lists use cursor pagination: pass `next_cursor` back as `cursor`.
* Creates accept `Idempotency-Key`; reads return an `ETag`, and PATCH honours `If-Match`.
* PATCH changes the fields it names; `null` clears a field whose schema allows null.
* Each API key has a rate limit (requests a minute); every answer carries `RateLimit-Limit`,
  `RateLimit-Remaining` and `RateLimit-Reset`, and past the limit comes 429 with `Retry-After`.
  Bodies larger than the deployment's limit (10 MiB by default) get 413, except file imports.
"""

TAGS = [
    {"name": "customers", "description": "Customers, their channel history, batch upsert."},
    {"name": "channels", "description": "Sales partners: agents, distributors, resellers, stores."},
    {"name": "interactions", "description": "Immutable events: orders, visits, feedback, ..."},
    {"name": "tickets", "description": "Service cases with priority, status and SLA times."},
    {"name": "scoring", "description": "The scoring profile, and recomputing scores as of a time."},
    {"name": "jobs", "description": "Long-running requests such as recomputes: status, progress."},
    {
        "name": "imports",
        "description": "Bulk import of CSV or NDJSON files as jobs, and their error reports.",
    },
    {
        "name": "webhooks",
        "description": "Signed event deliveries to your endpoints: subscriptions, secrets, "
        "delivery history, redelivery (admin).",
    },
    {
        "name": "alerts",
        "description": "Alert rules, and the alerts they raise: owned to-dos with a due date.",
    },
    {"name": "owners", "description": "Handing accounts over when staff change (admin)."},
    {
        "name": "sla",
        "description": "Ticket SLA policies: response and resolution targets, business hours.",
    },
    {"name": "reports", "description": "Figures over time, e.g. SLA compliance."},
    {"name": "exports", "description": "Whole lists as streamed CSV or NDJSON downloads."},
    {"name": "api-keys", "description": "Keys and their scopes (admin)."},
    {"name": "audit", "description": "Who changed what, before and after."},
    {"name": "ops", "description": "Liveness and readiness probes."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.secret_box = load_box(settings)  # no key: refuse to start
        engine = create_engine(settings)
        redis = Redis.from_url(settings.require_redis_url())
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.read_sessionmaker = create_read_sessionmaker(engine)
        app.state.redis = redis
        app.state.key_cache = KeyCache(settings.api_key_cache_seconds)
        app.state.rate_limiter = RateLimiter(redis, settings.queue_name)
        app.state.rows = RowReader(await create_pool(settings))
        app.state.months = Months(app.state.rows.pool)
        freeze_startup_objects()
        try:
            yield
        finally:
            await app.state.rows.pool.close()
            await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="retention-service",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(ops_router)
    app.include_router(metrics_router)
    for router in (
        customers_router,
        channels_router,
        interactions_router,
        tickets_router,
        scoring_router,
        jobs_router,
        imports_router,
        sla_policies_router,
        reports_router,
        retention_reports_router,
        alert_rules_router,
        alerts_router,
        owners_router,
        webhooks_router,
        webhook_deliveries_router,
        exports_router,
        api_keys_router,
        audit_router,
    ):
        app.include_router(router, prefix="/v1")
    app.add_middleware(HotReads)  # inside RateLimitHeaders: its answers carry the headers too
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Added last, so it is the outermost middleware: every answer is counted, logged and
    # carries its request id, those of other middleware included.
    observability.install(app)
    return app

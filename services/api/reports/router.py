import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status

from services.api.auth import Admin, Reader
from services.api.deps import ReadSession, Session
from services.api.jobs.schemas import JobRead
from services.api.problems import V1_RESPONSES
from services.api.reports import service
from services.api.reports.filters import Window, window
from services.api.reports.render import CSV, answer
from services.api.reports.schemas import (
    AlertGroup,
    AlertsReport,
    ChannelSort,
    ChannelsReport,
    CohortsReport,
    HealthReport,
    ReportFilters,
    RepurchaseReport,
    RetentionReport,
)
from services.api.scoring.service import queue_job
from services.core.models.enums import ValueTier
from services.core.reports.periods import Granularity
from services.core.reports.refresh import JOB_KIND

router = APIRouter(prefix="/reports", tags=["reports"], responses=V1_RESPONSES)

COMMON = (
    "Periods are UTC weeks (from Monday), months or quarters; `since` and `until` are days, "
    "and every period overlapping [`since`, `until`) is reported (default: the last 12 "
    "periods, the current one included). Each figure comes with the previous period's "
    "value and the change. Filters narrow the customers counted, by their current channel, "
    "value tier, owner, tag and channel region. Send `Accept: text/csv` for one CSV line per "
    "row, each figure as `<name>`, `<name>_previous` and `<name>_change`."
)
STALE = (
    " Figures come from tables the worker rebuilds daily, after each import and on "
    "`POST /v1/reports/refresh`; `data_as_of` says when."
)
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {CSV: {"schema": {"type": "string"}}}}
}


def _filters(
    channel_id: uuid.UUID | None = None,
    tier: ValueTier | None = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    region: Annotated[str | None, Query(max_length=100)] = None,
    tag: Annotated[str | None, Query(max_length=50)] = None,
) -> ReportFilters:
    return ReportFilters(channel_id=channel_id, tier=tier, owner=owner, region=region, tag=tag)


def _window(
    granularity: Annotated[Granularity, Query(description="week, month or quarter.")] = "month",
    since: Annotated[date | None, Query(description="First day reported (UTC).")] = None,
    until: Annotated[date | None, Query(description="Day after the last one reported.")] = None,
) -> Window:
    return window(granularity, since, until, datetime.now(UTC).date())


Filters = Annotated[ReportFilters, Depends(_filters)]
Periods = Annotated[Window, Depends(_window)]


@router.get(
    "/retention",
    response_model=RetentionReport,
    summary="Retention and churn by period",
    description="Customers active at each period's start, retained, churned (no interaction "
    "for the scoring profile's `churn_inactivity_days`), new and won back, with retention "
    f"and churn rates. {COMMON}{STALE}",
    responses=CSV_RESPONSE,
)
async def retention_report(
    request: Request, session: ReadSession, _: Reader, periods: Periods, filters: Filters
) -> Any:
    report = await service.retention(session, periods, filters)
    return answer(request, report, report.periods, "retention")


@router.get(
    "/repurchase",
    response_model=RepurchaseReport,
    summary="Repurchase by period",
    description="Customers ordering, the share who ordered twice or more, orders, revenue and "
    f"the average days between a customer's orders. {COMMON}{STALE}",
    responses=CSV_RESPONSE,
)
async def repurchase_report(
    request: Request, session: ReadSession, _: Reader, periods: Periods, filters: Filters
) -> Any:
    report = await service.repurchase(session, periods, filters)
    return answer(request, report, report.periods, "repurchase")


@router.get(
    "/cohorts",
    response_model=CohortsReport,
    summary="Cohort retention matrix",
    description="One row per month of first order in [`since`, `until`): the share of that "
    "cohort ordering 0, 1, ... `months` months later. Periods are always months here. "
    f"{COMMON}{STALE}",
    responses=CSV_RESPONSE,
)
async def cohorts_report(
    request: Request,
    session: ReadSession,
    _: Reader,
    filters: Filters,
    since: Annotated[date | None, Query(description="First cohort month (UTC).")] = None,
    until: Annotated[date | None, Query(description="Day after the last cohort.")] = None,
    months: Annotated[int, Query(ge=1, le=60, description="Months followed per cohort.")] = 12,
) -> Any:
    periods = window("month", since, until, datetime.now(UTC).date())
    report = await service.cohorts(session, periods, filters, months)
    return answer(request, report, report.cohorts, "cohorts")


@router.get(
    "/health",
    response_model=HealthReport,
    summary="Score bands and percentiles over time, and the biggest drops",
    description="For each period, the customers in each band and score percentiles on its "
    "last recorded day (the worker records one day per refresh), and the customers whose "
    f"score fell most over the last 30 days. {COMMON}{STALE}",
    responses=CSV_RESPONSE,
)
async def health_report(
    request: Request,
    session: ReadSession,
    _: Reader,
    periods: Periods,
    filters: Filters,
    movers: Annotated[int, Query(ge=0, le=100, description="How many movers to list.")] = 20,
) -> Any:
    report = await service.health(session, periods, filters, movers)
    return answer(request, report, report.periods, "health")


@router.get(
    "/channels",
    response_model=ChannelsReport,
    summary="Channel leaderboard",
    description="Every active channel in the last period of the range against the period "
    "before: health score, revenue and its trend, customers churned, open alerts and SLA "
    "compliance, sorted by `sort`; channels without the figure come last. Tier, owner and "
    f"tag narrow the customers behind revenue and churn. {COMMON}{STALE}",
    responses=CSV_RESPONSE,
)
async def channels_report(
    request: Request,
    session: ReadSession,
    _: Reader,
    periods: Periods,
    filters: Filters,
    sort: ChannelSort = "health",
    order: Annotated[
        Literal["asc", "desc"], Query(description="asc puts the weakest health first.")
    ] = "asc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    report = await service.channels(session, periods, filters, sort, order, limit)
    return answer(request, report, report.channels, "channels")


@router.get(
    "/alerts",
    response_model=AlertsReport,
    summary="Alerts opened and resolved",
    description="Per period and rule or owner: alerts opened, resolved and dismissed, and the "
    "median hours to resolve those resolved in the period. Read live from alerts. Tier and "
    f"tag narrow to alerts about customers. {COMMON}",
    responses=CSV_RESPONSE,
)
async def alerts_report(
    request: Request,
    session: ReadSession,
    _: Reader,
    periods: Periods,
    filters: Filters,
    group_by: AlertGroup = "rule",
) -> Any:
    report = await service.alerts(session, periods, filters, group_by)
    return answer(request, report, report.periods, "alerts")


@router.post(
    "/refresh",
    response_model=JobRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Rebuild the pre-aggregated report figures now",
    description="Queues a job that rebuilds the tables behind the retention, repurchase, "
    "cohort, health and channel reports; the worker also does so after every recompute "
    "(the daily rescoring and each import's). Poll `Location` (`/v1/jobs/{id}`).",
)
async def refresh_reports(session: Session, actor: Admin, response: Response) -> JobRead:
    job = await queue_job(session, actor, JOB_KIND, {"reason": "requested"})
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobRead.model_validate(job)

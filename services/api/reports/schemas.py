import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.core.reports.periods import Granularity


class Figure(BaseModel):
    """A figure for a period with the same figure for the period before."""

    value: int | float | None = Field(
        description="Null when it cannot be computed (e.g. a rate of 0)."
    )
    previous: int | float | None = Field(description="The figure for the previous period.")
    change: int | float | None = Field(
        description="`value - previous`; for rates, in percentage points."
    )


class ReportFilters(BaseModel):
    channel_id: uuid.UUID | None = None
    tier: str | None = None
    owner: str | None = None
    region: str | None = None
    tag: str | None = None


class ReportHeader(BaseModel):
    granularity: Granularity
    since: date = Field(description="First day of the first period (UTC).")
    until: date = Field(description="First day after the last period (UTC).")
    filters: ReportFilters
    data_as_of: datetime | None = Field(
        description="When the pre-aggregated figures were computed; null before the first "
        "refresh. They are rebuilt daily and after imports, so at most a day old."
    )


class PeriodRow(BaseModel):
    period_start: date
    period_end: date = Field(description="First day of the next period.")
    complete: bool = Field(description="False for the period that includes `data_as_of`.")


class RetentionFigures(BaseModel):
    customers_at_start: Figure = Field(description="Active when the period began.")
    retained: Figure = Field(description="Active at the start and not churned in the period.")
    churned: Figure = Field(
        description="Reached the profile's `churn_inactivity_days` without any interaction "
        "during the period."
    )
    new: Figure = Field(description="First interaction ever in the period.")
    won_back: Figure = Field(description="Active again in the period after having churned.")
    customers_at_end: Figure = Field(description="`at start + new + won back - churned`.")
    retention_rate: Figure = Field(description="Percent of `customers_at_start` retained.")
    churn_rate: Figure = Field(description="Percent of `customers_at_start` who churned.")


class RetentionPeriod(PeriodRow):
    figures: RetentionFigures


class RetentionReport(ReportHeader):
    churn_days: int | None = Field(description="The inactivity that counts as churn, in days.")
    periods: list[RetentionPeriod]


class RepurchaseFigures(BaseModel):
    ordering_customers: Figure = Field(description="Customers with at least one order.")
    repeat_customers: Figure = Field(description="Customers with two orders or more.")
    repeat_rate: Figure = Field(description="Percent of ordering customers who ordered again.")
    orders: Figure
    revenue: Figure
    average_order_interval_days: Figure = Field(
        description="Mean days between a customer's order and their previous order, over the "
        "orders of the period that had one."
    )


class RepurchasePeriod(PeriodRow):
    figures: RepurchaseFigures


class RepurchaseReport(ReportHeader):
    periods: list[RepurchasePeriod]


class CohortRow(BaseModel):
    cohort: date = Field(description="The month of the customers' first order.")
    customers: int = Field(description="Customers whose first order fell in that month.")
    retention: list[Figure] = Field(
        description="Item N: percent of the cohort ordering N months after its first month "
        "(item 0 is 100); `previous` is the previous cohort's share. Months not yet over are "
        "left out."
    )


class CohortsReport(ReportHeader):
    granularity: Literal["month"] = "month"
    months: int
    cohorts: list[CohortRow]


class HealthFigures(BaseModel):
    scored: Figure = Field(description="Customers with a score.")
    green: Figure
    yellow: Figure
    red: Figure
    red_share: Figure = Field(description="Percent of scored customers in the red band.")
    p10: Figure = Field(description="10th percentile of scores (whole points).")
    p25: Figure
    median: Figure
    p75: Figure
    p90: Figure


class HealthPeriod(PeriodRow):
    snapshot_day: date | None = Field(
        description="The day whose scores describe the period: its last recorded day."
    )
    figures: HealthFigures


class Mover(BaseModel):
    customer_id: uuid.UUID
    name: str
    external_ref: str | None
    score: float
    band: str
    change: float = Field(description="Points gained (negative: lost) over the last 30 days.")


class HealthReport(ReportHeader):
    periods: list[HealthPeriod]
    movers: list[Mover] = Field(description="The customers whose score fell most, worst first.")


ChannelSort = Literal[
    "health", "revenue", "revenue_trend", "churned", "open_alerts", "sla_compliance"
]


class ChannelFigures(BaseModel):
    health: Figure = Field(description="Current score; previous: 30 days before.")
    revenue: Figure
    revenue_trend: Figure = Field(
        description="Percent change of revenue against the previous period."
    )
    churned: Figure = Field(description="Customers of the channel who churned in the period.")
    open_alerts: Figure = Field(description="Open or acknowledged alerts now; no previous.")
    sla_compliance: Figure = Field(
        description="Percent of the decided tickets opened in the period that met every SLA target."
    )


class ChannelRow(BaseModel):
    channel_id: uuid.UUID
    name: str
    region: str | None
    band: str | None
    figures: ChannelFigures


class ChannelsReport(ReportHeader):
    sort: ChannelSort
    order: Literal["asc", "desc"]
    channels: list[ChannelRow]


AlertGroup = Literal["rule", "owner", "all"]


class AlertFigures(BaseModel):
    opened: Figure
    resolved: Figure
    dismissed: Figure
    median_hours_to_resolve: Figure = Field(
        description="Median hours from opening to resolution of the alerts resolved in the period."
    )


class AlertGroupPeriod(PeriodRow):
    group: str | None = Field(description="The rule id or owner; null for alerts with no owner.")
    group_name: str | None = Field(description="The rule's name when grouped by rule.")
    figures: AlertFigures


class AlertsReport(ReportHeader):
    group_by: AlertGroup
    periods: list[AlertGroupPeriod] = Field(description="Ordered by period, then group.")

"""Pre-aggregated report figures, rebuilt by the worker (services/core/reports/refresh.py).

Customers are grouped into segments: every distinct (channel, value tier, owner, tags) that a
customer has. Counts of distinct customers add up across segments, since each customer is in
exactly one, so a report filtered by any of those sums a few rows per segment and period
instead of reading interactions.
"""

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Identity, Index, Numeric, SmallInteger, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base
from services.core.models.enums import ValueTier


class ReportSegment(Base):
    __tablename__ = "report_segments"

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    key: Mapped[str] = mapped_column(Text, unique=True)
    """The segment's attributes as a JSON array: one text column to join customers on."""
    channel_id: Mapped[uuid.UUID | None]
    value_tier: Mapped[ValueTier | None] = mapped_column(String(32))
    owner: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str]]


class ReportPeriod(Base):
    """What happened to one segment's customers in one week, month or quarter (UTC)."""

    __tablename__ = "report_periods"

    # Key order: a filtered report reads each selected segment's periods as one index range.
    unit: Mapped[str] = mapped_column(String(8), primary_key=True)
    segment_id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[date] = mapped_column(primary_key=True)
    new_customers: Mapped[int]
    won_back: Mapped[int]
    churned: Mapped[int]
    churned_from_start: Mapped[int]
    """Churned in the period after being active when it began."""
    ordering_customers: Mapped[int]
    repeat_customers: Mapped[int]
    orders: Mapped[int]
    revenue: Mapped[Decimal] = mapped_column(Numeric(20, 4))
    interval_days: Mapped[int] = mapped_column(BigInteger)
    intervals: Mapped[int]


class ReportCohort(Base):
    """Customers of a first-order month (`cohort`) who ordered `month_offset` months later."""

    __tablename__ = "report_cohorts"

    segment_id: Mapped[int] = mapped_column(primary_key=True)
    cohort: Mapped[date] = mapped_column(primary_key=True)
    month_offset: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    customers: Mapped[int]


class ReportHealthDay(Base):
    """A segment's scores on one day: band counts and a histogram of whole scores 0..100."""

    __tablename__ = "report_health_days"

    day: Mapped[date] = mapped_column(primary_key=True)
    segment_id: Mapped[int] = mapped_column(primary_key=True)
    green: Mapped[int]
    yellow: Mapped[int]
    red: Mapped[int]
    histogram: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))


class ReportRefresh(Base):
    """One rebuild of the report tables; reports name the latest as their `data_as_of`."""

    __tablename__ = "report_refreshes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    as_of: Mapped[datetime]
    churn_days: Mapped[int]
    segments: Mapped[int]
    seconds: Mapped[float]
    finished_at: Mapped[datetime]

    __table_args__ = (Index(None, "finished_at"),)

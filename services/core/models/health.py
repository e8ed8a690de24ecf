import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Identity, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base


class ScoringProfile(Base):
    """Weights, thresholds and band cut-offs; a PUT adds a version, the highest one is in use."""

    __tablename__ = "scoring_profiles"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[str] = mapped_column(String(200))


class ScoreColumns:
    """What every stored score holds: the figure, its band and what it is made of."""

    score: Mapped[float] = mapped_column(Float)
    band: Mapped[str] = mapped_column(String(10))
    contributions: Mapped[dict[str, Any]]
    profile_version: Mapped[int]
    as_of: Mapped[datetime]


class CurrentScoreColumns(ScoreColumns):
    features: Mapped[dict[str, Any]]
    trend: Mapped[float | None] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CustomerHealth(CurrentScoreColumns, Base):
    """The current score of a customer, with what it is made of."""

    __tablename__ = "customer_health"

    # No foreign key, as for the history below: a full recompute inserts a million of these.
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)

    # trend: the customers whose score fell most (the health report's movers).
    __table_args__ = (Index(None, "band", "score"), Index(None, "score"), Index(None, "trend"))


class CustomerHealthHistory(ScoreColumns, Base):
    """A row whenever a customer's score or band changes, and at least one a day."""

    __tablename__ = "customer_health_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # No foreign key: written only by the scorer for customers it just read, a million rows a
    # full recompute, and customers are never deleted (see docs/architecture.md).
    customer_id: Mapped[uuid.UUID]

    __table_args__ = (Index(None, "customer_id", "as_of"),)


class ChannelHealth(CurrentScoreColumns, Base):
    __tablename__ = "channel_health"

    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (Index(None, "band", "score"), Index(None, "score"))


class ChannelHealthHistory(ScoreColumns, Base):
    __tablename__ = "channel_health_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))

    __table_args__ = (Index(None, "channel_id", "as_of"),)


class LifecycleMove(Base):
    """A customer's lifecycle stage changed: from, to, when, and the score that moved it."""

    __tablename__ = "lifecycle_moves"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    customer_id: Mapped[uuid.UUID]  # no foreign key, as in customer_health_history
    from_stage: Mapped[str] = mapped_column(String(32))
    to_stage: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    reason: Mapped[dict[str, Any]]

    __table_args__ = (Index(None, "customer_id", "at"),)

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, IdMixin, TimestampsMixin, VersionMixin, str_enum
from services.core.models.enums import AlertKind, AlertStatus, AlertSubject, Severity

OPEN_STATUSES = (AlertStatus.open.value, AlertStatus.acknowledged.value)


class AlertRule(IdMixin, TimestampsMixin, VersionMixin, Base):
    """A condition on customers or channels that raises an alert, narrowed by tier, channel
    and tag. Deleting a rule archives it: its alerts keep pointing at it."""

    __tablename__ = "alert_rules"

    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[AlertKind] = mapped_column(str_enum(AlertKind))
    subject: Mapped[AlertSubject] = mapped_column(str_enum(AlertSubject))
    params: Mapped[dict[str, Any]]
    severity: Mapped[Severity] = mapped_column(str_enum(Severity))
    tiers: Mapped[list[str]] = mapped_column(server_default="{}")
    channel_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("channels.id"))
    tag: Mapped[str | None] = mapped_column(String(50))
    auto_resolve: Mapped[bool] = mapped_column(server_default="true")
    due_hours: Mapped[int] = mapped_column(server_default="72")
    active: Mapped[bool] = mapped_column(server_default="true")
    archived_at: Mapped[datetime | None]


class Alert(IdMixin, VersionMixin, Base):
    """A to-do raised by a rule for one subject. At most one is open (or acknowledged) per
    rule and subject: firing again updates it instead of adding another."""

    __tablename__ = "alerts"

    rule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alert_rules.id"))
    subject: Mapped[AlertSubject] = mapped_column(str_enum(AlertSubject))
    subject_id: Mapped[uuid.UUID]
    channel_id: Mapped[uuid.UUID | None]
    """The channel itself, or the customer's channel when the alert was raised."""
    severity: Mapped[Severity] = mapped_column(str_enum(Severity))
    status: Mapped[AlertStatus] = mapped_column(
        str_enum(AlertStatus), server_default=AlertStatus.open.value
    )
    reason: Mapped[dict[str, Any]]
    owner: Mapped[str | None] = mapped_column(String(200))
    due_at: Mapped[datetime]
    opened_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    last_fired_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    fire_count: Mapped[int] = mapped_column(server_default="1")
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(200))
    """Who resolved or dismissed it; `auto` when its condition cleared."""
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))

    __table_args__ = (
        Index(
            "uq_alerts_open_rule_subject",
            "rule_id",
            "subject_id",
            unique=True,
            postgresql_where=text("status IN ('open', 'acknowledged')"),
        ),
        Index(None, "status", "opened_at"),
        Index(None, "owner", "status"),
        Index(None, "channel_id"),
        Index(None, "subject_id"),
    )


class AlertNote(Base):
    __tablename__ = "alert_notes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))

    __table_args__ = (Index(None, "alert_id", "created_at"),)

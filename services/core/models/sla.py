import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, IdMixin, TimestampsMixin, VersionMixin


class SlaPolicy(IdMixin, TimestampsMixin, VersionMixin, Base):
    """First-response and resolution targets per priority, the hours the clock runs and the
    statuses that stop it. A ticket takes its channel's policy, else the default one.

    `targets` maps each priority to `{"first_response_minutes", "resolution_minutes"}`;
    `business_hours` is a `BusinessHours` spec (None: around the clock). Deleting a policy
    archives it: tickets keep the due times it gave them.
    """

    __tablename__ = "sla_policies"

    name: Mapped[str] = mapped_column(String(200))
    channel_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("channels.id"))
    is_default: Mapped[bool] = mapped_column(server_default="false")
    targets: Mapped[dict[str, Any]]
    business_hours: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    pause_statuses: Mapped[list[str]] = mapped_column(server_default="{pending}")
    due_soon_ratio: Mapped[float] = mapped_column(Float, server_default="0.8")
    archived_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("due_soon_ratio > 0 AND due_soon_ratio < 1", name="due_soon_ratio_range"),
        CheckConstraint(
            "NOT (is_default AND channel_id IS NOT NULL)", name="default_for_every_channel"
        ),
        CheckConstraint(
            "targets ?& ARRAY['low', 'normal', 'high', 'urgent']", name="targets_every_priority"
        ),
        Index(
            "uq_sla_policies_default",
            "is_default",
            unique=True,
            postgresql_where=text("is_default AND archived_at IS NULL"),
        ),
        Index(
            "uq_sla_policies_channel_id",
            "channel_id",
            unique=True,
            postgresql_where=text("channel_id IS NOT NULL AND archived_at IS NULL"),
        ),
    )

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, IdMixin, TimestampsMixin, VersionMixin, str_enum
from services.core.models.enums import TicketKind, TicketPriority, TicketStatus


class Ticket(IdMixin, TimestampsMixin, VersionMixin, Base):
    """A service case; SLA due times and breach flags are filled in by SLA policies.

    The SLA clock stops while the ticket is in one of its policy's pause statuses: `paused_since`
    marks the current pause, `sla_pauses` lists the finished ones as `[start, end]` ISO pairs,
    and the due times are recomputed from `created_at` over all of them when a pause ends.
    """

    __tablename__ = "tickets"

    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    channel_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("channels.id"))
    subject: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[TicketKind] = mapped_column(str_enum(TicketKind))
    priority: Mapped[TicketPriority] = mapped_column(
        str_enum(TicketPriority), server_default=TicketPriority.normal.value
    )
    status: Mapped[TicketStatus] = mapped_column(
        str_enum(TicketStatus), server_default=TicketStatus.open.value
    )
    assignee: Mapped[str | None] = mapped_column(String(200))
    sla_policy_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sla_policies.id"))
    first_response_due_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]
    first_response_due_soon_at: Mapped[datetime | None]
    resolution_due_soon_at: Mapped[datetime | None]
    paused_since: Mapped[datetime | None]
    sla_pauses: Mapped[list[Any]] = mapped_column(JSONB, server_default="[]")
    first_responded_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    first_response_breached: Mapped[bool] = mapped_column(server_default="false")
    resolution_breached: Mapped[bool] = mapped_column(server_default="false")
    first_response_warned: Mapped[bool] = mapped_column(server_default="false")
    resolution_warned: Mapped[bool] = mapped_column(server_default="false")
    resolution: Mapped[str | None] = mapped_column(Text)
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)
    tags: Mapped[list[str]] = mapped_column(server_default="{}")

    __table_args__ = (
        CheckConstraint("satisfaction BETWEEN 1 AND 5", name="satisfaction_range"),
        Index(None, "created_at", "id"),
        Index(None, "customer_id", "created_at"),
        Index(None, "channel_id"),
        Index(None, "status", "priority"),
        Index(None, "assignee"),
        # The open tickets the SLA check still has to look at: a small slice of all tickets.
        Index(
            "ix_tickets_sla_pending",
            "resolution_due_at",
            postgresql_where=text("resolved_at IS NULL AND NOT resolution_breached"),
        ),
    )

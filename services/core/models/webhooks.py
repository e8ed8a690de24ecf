import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Identity, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, IdMixin, TimestampsMixin, VersionMixin, str_enum


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class WebhookEndpoint(IdMixin, TimestampsMixin, VersionMixin, Base):
    """A subscriber: where to send which event types, and the secrets that sign them. During a
    rotation the previous secret signs too, until it expires. Both secrets are stored encrypted
    (services/core/crypto.py): the columns hold Fernet tokens, never `whsec_…` values."""

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]]
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(server_default="true")
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    failing_since: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)


class WebhookMessage(Base):
    """One event as sent to every subscriber: the body is fixed when the event happens, so a
    retry or a redelivery sends the same bytes under the same `webhook-id`."""

    __tablename__ = "webhook_messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[uuid.UUID | None]
    sequence: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))

    __table_args__ = (Index(None, "subject_id", "sequence"),)


class WebhookSequence(Base):
    """The last sequence number given to a subject's events, so receivers can drop stale ones."""

    __tablename__ = "webhook_sequences"

    subject_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    last: Mapped[int] = mapped_column(BigInteger)


class WebhookDelivery(IdMixin, Base):
    """A message owed to one endpoint, written in the transaction of the event that caused it."""

    __tablename__ = "webhook_deliveries"

    message_id: Mapped[str] = mapped_column(ForeignKey("webhook_messages.id", ondelete="CASCADE"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    status: Mapped[DeliveryStatus] = mapped_column(
        str_enum(DeliveryStatus), server_default=DeliveryStatus.pending.value
    )
    attempts: Mapped[int] = mapped_column(server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(server_default=text("now()"))
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        Index(None, "message_id", "endpoint_id", unique=True),
        Index(None, "endpoint_id", "created_at"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )


class WebhookAttempt(Base):
    """One HTTP request of a delivery and what came back."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None]
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "delivery_id", "attempted_at"),)

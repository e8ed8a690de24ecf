import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, IdMixin, TimestampsMixin, VersionMixin, str_enum
from services.core.models.enums import LifecycleStage, ValueTier


class Customer(IdMixin, TimestampsMixin, VersionMixin, Base):
    __tablename__ = "customers"

    external_ref: Mapped[str | None] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    address: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(200))
    channel_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("channels.id"))
    value_tier: Mapped[ValueTier | None] = mapped_column(str_enum(ValueTier))
    lifecycle_stage: Mapped[LifecycleStage] = mapped_column(
        str_enum(LifecycleStage), server_default=LifecycleStage.onboarding.value
    )
    tags: Mapped[list[str]] = mapped_column(server_default="{}")
    attributes: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    birthday: Mapped[date | None]
    contract_end: Mapped[date | None]
    notes: Mapped[str | None] = mapped_column(Text)
    archived_at: Mapped[datetime | None]

    __table_args__ = (
        Index(None, "created_at", "id"),
        Index(None, "channel_id"),
        Index(None, "owner"),
        Index(None, "tags", postgresql_using="gin"),
        Index(
            "ix_customers_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
        Index(
            "ix_customers_external_ref_trgm",
            "external_ref",
            postgresql_using="gin",
            postgresql_ops={"external_ref": "gin_trgm_ops"},
        ),
    )


class CustomerChannelMembership(Base):
    """Which channel a customer belonged to and when; the open row has no `ended_at`."""

    __tablename__ = "customer_channel_memberships"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("channels.id"))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    __table_args__ = (
        Index(None, "customer_id", "started_at"),
        Index(
            "uq_customer_channel_memberships_open",
            "customer_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

from datetime import date, datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, IdMixin, TimestampsMixin, VersionMixin, str_enum
from services.core.models.enums import ChannelStatus, ChannelTier, ChannelType


class Channel(IdMixin, TimestampsMixin, VersionMixin, Base):
    """A sales partner: agent, distributor, reseller, online store or the direct channel."""

    __tablename__ = "channels"

    external_ref: Mapped[str | None] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[ChannelType] = mapped_column(str_enum(ChannelType))
    tier: Mapped[ChannelTier | None] = mapped_column(str_enum(ChannelTier))
    region: Mapped[str | None] = mapped_column(String(100))
    owner: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[ChannelStatus] = mapped_column(
        str_enum(ChannelStatus), server_default=ChannelStatus.active.value
    )
    contract_start: Mapped[date | None]
    contract_end: Mapped[date | None]
    tags: Mapped[list[str]] = mapped_column(server_default="{}")
    attributes: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    notes: Mapped[str | None] = mapped_column(Text)
    archived_at: Mapped[datetime | None]

    __table_args__ = (
        Index(None, "created_at", "id"),
        Index(None, "owner"),
        Index(None, "tags", postgresql_using="gin"),
        Index(
            "ix_channels_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

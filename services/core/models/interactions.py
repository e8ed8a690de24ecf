import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Index, Numeric, SmallInteger, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, IdMixin, str_enum
from services.core.models.enums import InteractionKind


class Interaction(IdMixin, Base):
    """An immutable event about a customer; the big table, read per customer and time range.

    Partitioned by month of `occurred_at` (services/core/partitions.py), so its primary key holds
    `occurred_at` and a unique `external_id` lives in InteractionExternalId instead."""

    __tablename__ = "interactions"

    # No foreign keys: writers resolve both in the same transaction, and customers and channels
    # are never deleted (a trigger refuses it; see the migration 4c8e1f7a2b95).
    customer_id: Mapped[uuid.UUID]
    channel_id: Mapped[uuid.UUID | None]
    kind: Mapped[InteractionKind] = mapped_column(str_enum(InteractionKind))
    occurred_at: Mapped[datetime] = mapped_column(primary_key=True)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    currency: Mapped[str | None] = mapped_column(String(3))
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)
    nps: Mapped[int | None] = mapped_column(SmallInteger)
    external_id: Mapped[str | None] = mapped_column(String(200))
    summary: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint("satisfaction BETWEEN 1 AND 5", name="satisfaction_range"),
        CheckConstraint("nps BETWEEN 0 AND 10", name="nps_range"),
        # Covering: scoring reads every feature from the index alone (index-only scan); the
        # table is insert-only, so its pages stay all-visible once vacuumed.
        Index(
            None,
            "customer_id",
            "occurred_at",
            postgresql_include=["kind", "amount", "satisfaction", "nps"],
        ),
        Index(None, "channel_id", "occurred_at"),
        Index(None, "occurred_at", "id"),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )


class InteractionExternalId(Base):
    """The stored interaction of each external id: what makes `external_id` unique across all
    partitions of interactions, and how a duplicate finds the interaction it repeats."""

    __tablename__ = "interaction_external_ids"

    external_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    interaction_id: Mapped[uuid.UUID]
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

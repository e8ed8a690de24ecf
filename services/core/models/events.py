from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base


class OutboxEvent(Base):
    """A domain event written in the transaction of the change; a relay hands it to the worker."""

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    relayed_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_outbox_events_pending", "id", postgresql_where=text("relayed_at IS NULL")),
    )

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, IdMixin


class Job(IdMixin, Base):
    """A long-running request (recompute, import) that clients poll at `/v1/jobs/{id}`."""

    __tablename__ = "jobs"

    kind: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), server_default="queued")
    params: Mapped[dict[str, Any]]
    progress: Mapped[float] = mapped_column(Float, server_default="0")
    done: Mapped[int] = mapped_column(Integer, server_default="0")
    total: Mapped[int | None]
    result: Mapped[dict[str, Any] | None]
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "created_at"),)

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, IdMixin, TimestampsMixin


class ApiKey(IdMixin, TimestampsMixin, Base):
    """A bearer key; only its SHA-256 is stored, `prefix` lets people tell keys apart.
    `last_used_at` is written at most once a minute; `rate_limit_per_minute` overrides the
    deployment's default (null: the default, 0: no limit)."""

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    rate_limit_per_minute: Mapped[int | None]

    __table_args__ = (
        CheckConstraint("rate_limit_per_minute >= 0", name="rate_limit_not_negative"),
    )

"""Declarative base, constraint naming convention and the columns most tables share."""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Date, DateTime, Enum, Integer, MetaData, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from uuid_utils.compat import uuid7

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        date: Date(),
        uuid.UUID: UUID(as_uuid=True),
        dict[str, Any]: JSONB(),
        list[str]: ARRAY(Text()),
        int: Integer(),
    }


def str_enum(enum: type[StrEnum]) -> Enum:
    """A text column with a CHECK constraint: cheaper to extend than a native PostgreSQL enum."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        name=enum.__name__.lower(),
    )


def new_id() -> uuid.UUID:
    """Time-ordered ids keep the primary-key index append-mostly on big tables."""
    return uuid7()


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id, sort_order=-1)


class TimestampsMixin:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class VersionMixin:
    """Incremented on every update; the ETag of a resource is its version."""

    version: Mapped[int] = mapped_column(server_default="1")

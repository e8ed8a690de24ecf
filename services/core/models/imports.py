import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.base import Base, IdMixin, str_enum


class ImportKind(StrEnum):
    interactions = "interactions"
    customers = "customers"
    channels = "channels"
    tickets = "tickets"


class ImportStatus(StrEnum):
    running = "running"
    finished = "finished"
    # A newer file took this path before the run finished: it can no longer be resumed.
    abandoned = "abandoned"


class ImportRun(IdMixin, Base):
    """One bulk import of one file, checkpointed in the transaction of every batch it commits,
    so an interrupted import continues after its last committed line. A file is the same file
    while its path, size and modification time are."""

    __tablename__ = "import_runs"

    kind: Mapped[ImportKind] = mapped_column(str_enum(ImportKind))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(10))
    status: Mapped[ImportStatus] = mapped_column(
        str_enum(ImportStatus), server_default=ImportStatus.running.value
    )
    committed_line: Mapped[int] = mapped_column(
        BigInteger, server_default="0", doc="The last line of the last committed batch."
    )
    committed_offset: Mapped[int] = mapped_column(
        BigInteger, server_default="0", doc="The byte just after that line."
    )
    report_size: Mapped[int] = mapped_column(
        BigInteger, server_default="0", doc="Bytes of the error report the committed lines wrote."
    )
    rows: Mapped[int] = mapped_column(BigInteger, server_default="0")
    imported: Mapped[int] = mapped_column(BigInteger, server_default="0")
    duplicates: Mapped[int] = mapped_column(BigInteger, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    customer_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)),
        server_default="{}",
        doc="The customers the import wrote, for the recompute that follows it; emptied when "
        "`all_customers` is set.",
    )
    all_customers: Mapped[bool] = mapped_column(
        server_default="false", doc="Too many customers to name: recompute every customer."
    )
    recompute_job_id: Mapped[uuid.UUID | None]
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "path", "kind", "started_at"),)

"""Set-based loading of one batch: COPY into a session TEMP staging table, then a few statements
for the whole batch, whatever its size. Rows are checked in Python first (formats.py); what
needs the database (customers and channels named by id or external reference, what is already
stored) is resolved by the loaders (interactions.py, records.py), and rows that fail it are
reported, not written. This module holds what they share.
"""

import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import asyncpg

from services.core.imports.formats import Values
from services.core.imports.report import LineProblem
from services.core.models.imports import ImportKind

STAGING = "import_staging"

Staged = tuple[Any, ...]
"""A row as COPY sends it to the staging table: its line first."""


@dataclass
class Written:
    """What the database made of a batch."""

    imported: int = 0
    duplicates: int = 0
    problems: list[LineProblem] = field(default_factory=list)
    customer_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    run_started: datetime
    default_currency: str
    ordered: bool
    """Insert in key order: batches written side by side then wait on each other's keys in
    one order only, which cannot deadlock."""


def references(row: Values) -> tuple[Any, Any, Any, Any]:
    return (
        row.get("customer_id"),
        row.get("customer_external_ref"),
        row.get("channel_id"),
        row.get("channel_external_ref"),
    )


class Loader(ABC):
    """How one kind is staged and written."""

    kind: ClassVar[ImportKind]
    columns: ClassVar[tuple[tuple[str, str], ...]]
    """Staging columns and their types, in COPY order (after `line`)."""
    upsert: ClassVar[bool] = False
    """Records are matched by key and updated (a key repeated in a batch goes to the next
    round); otherwise rows are only inserted (a key repeated in a batch fails)."""

    @classmethod
    def staging_ddl(cls) -> str:
        columns = ", ".join(f"{name} {type_}" for name, type_ in (("line", "bigint"), *cls.columns))
        return f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} ({columns}) ON COMMIT DELETE ROWS"

    @classmethod
    def column_names(cls) -> list[str]:
        return ["line", *(name for name, _ in cls.columns)]

    async def prepare(self, conn: asyncpg.Connection, rows: Sequence[Staged]) -> None:
        """Schema work a batch needs before its transaction; nothing for most kinds."""
        return None

    @abstractmethod
    def stage(self, line: int, round_: int, row: Values, context: Context) -> Staged:
        """The staging row for a checked row; `round_` is its key's occurrence in the batch."""

    @abstractmethod
    async def write(
        self, conn: asyncpg.Connection, rows: Sequence[Staged], rounds: int, context: Context
    ) -> Written:
        """Write the staged batch (already copied to the staging table) in the caller's
        transaction."""


def customer_join(by_id: bool, by_ref: bool) -> tuple[str, str, str]:
    """The join that finds the customer a staged row names, its id and its channel. Only the
    references a batch uses are joined: a join on a column that is null in every row would
    still read every customer."""
    if by_id and by_ref:
        joins = (
            "LEFT JOIN customers ci ON ci.id = s.customer_id "
            "LEFT JOIN customers cr ON cr.external_ref = s.customer_ref"
        )
        return joins, "coalesce(ci.id, cr.id)", "coalesce(ci.channel_id, cr.channel_id)"
    if by_id:
        return "LEFT JOIN customers c ON c.id = s.customer_id", "c.id", "c.channel_id"
    return "LEFT JOIN customers c ON c.external_ref = s.customer_ref", "c.id", "c.channel_id"


def channel_join(by_id: bool, by_ref: bool) -> tuple[str, str]:
    """The join that finds the channel a staged row names explicitly, and its id."""
    if by_id and by_ref:
        joins = (
            "LEFT JOIN channels hi ON hi.id = s.channel_id "
            "LEFT JOIN channels hr ON hr.external_ref = s.channel_ref"
        )
        return joins, "coalesce(hi.id, hr.id)"
    if by_id:
        return "LEFT JOIN channels h ON h.id = s.channel_id", "h.id"
    if by_ref:
        return "LEFT JOIN channels h ON h.external_ref = s.channel_ref", "h.id"
    return "", "NULL::uuid"


def used(rows: Sequence[Staged], index: int) -> bool:
    """Whether any row of the batch has a value in this staging column."""
    return any(row[index] is not None for row in rows)

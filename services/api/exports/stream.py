"""An export read through a server-side cursor and encoded a chunk at a time: the rows in
memory are one chunk's, whatever the size of the export."""

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncResult

from services.api.exports.encoding import ExportFormat, encoder

if TYPE_CHECKING:  # the CLI reads CHUNK_ROWS without loading the API's filter code
    from services.api.exports.kinds import Export

CHUNK_ROWS = 2_000
"""Rows fetched per round trip and encoded together."""


class Encoded:
    """The encoded export, chunk by chunk: the CSV header first, then one piece per chunk of
    rows. `rows` counts the rows encoded so far."""

    def __init__(
        self, result: AsyncResult[*tuple[Any, ...]], export: "Export", format_: ExportFormat
    ) -> None:
        self.result = result
        self.encoder = encoder(format_, export.fields)
        self.rows = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        header = self.encoder.header()
        if header:
            yield header
        async for rows in self.result.partitions():
            self.rows += len(rows)
            yield self.encoder.rows(rows)


async def start(
    conn: AsyncConnection, export: "Export", format_: ExportFormat, chunk_rows: int | None = None
) -> Encoded:
    """Run the export's query on `conn` (in a read-only transaction, one snapshot for the whole
    export) and return its encoded rows, fetched as they are read. Errors in the query itself
    surface here, before anything is sent."""
    await conn.execution_options(postgresql_readonly=True)
    size = chunk_rows or CHUNK_ROWS
    result = await conn.stream(export.query.execution_options(yield_per=size))
    return Encoded(result, export, format_)

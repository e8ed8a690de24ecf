"""`import_file`: one file into one kind of record, batch by batch.

A thread reads and checks the next batch while the database writes the current ones. Each
batch is one transaction on its own connection (COPY to staging, the set-based statements, the
error report lines and the checkpoint); for interactions two batches are written side by side,
and they commit strictly in file order, so the checkpoint always marks a prefix of the file.
"""

import asyncio
import csv
import gc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from services.core import metrics
from services.core.config import Settings
from services.core.db import asyncpg_dsn
from services.core.errors import InvalidInput
from services.core.imports import formats, runs
from services.core.imports.interactions import InteractionLoader
from services.core.imports.load import STAGING, Context, Loader, Staged, Written
from services.core.imports.reader import Chunk, CsvReader, NdjsonReader, Position, chunks
from services.core.imports.records import ChannelLoader, CustomerLoader, TicketLoader
from services.core.imports.report import ErrorReport, LineProblem, report_path
from services.core.models.imports import ImportKind

DEFAULT_BATCH_SIZE = 50_000
PARALLEL_BATCHES = 2
"""Batches of interactions written at once, each on its own connection: PostgreSQL spends one
core per INSERT, mostly on index entries, so two use both cores."""

GC_THRESHOLD = 100_000
"""Allocations between collections of the youngest generation while importing: batches hold
hundreds of thousands of objects in no reference cycle, and the default pass every 700
allocations took a quarter to a third of the time spent reading and checking rows."""

_SESSION = {
    "application_name": "retention-import",
    "jit": "off",
    # The staging table lives in temp buffers; a 50,000-row batch fits in 64 MB.
    "temp_buffers": "64MB",
    "work_mem": "64MB",
}


class ImportFormat(StrEnum):
    csv = "csv"
    ndjson = "ndjson"


LOADERS: dict[ImportKind, type[Loader]] = {
    ImportKind.interactions: InteractionLoader,
    ImportKind.customers: CustomerLoader,
    ImportKind.channels: ChannelLoader,
    ImportKind.tickets: TicketLoader,
}

EXTENSIONS = {
    ".csv": ImportFormat.csv,
    ".ndjson": ImportFormat.ndjson,
    ".jsonl": ImportFormat.ndjson,
}


def format_of(path: Path) -> ImportFormat:
    found = EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise InvalidInput(
            f"Cannot tell the format of {path.name} from its extension "
            "(.csv, .ndjson or .jsonl); name it with --format."
        )
    return found


@dataclass(frozen=True)
class ImportOptions:
    format: ImportFormat | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    recompute: bool = True
    as_of: datetime | None = None
    """When the recompute after the import scores as of; now when unset."""
    parallel: int = PARALLEL_BATCHES
    source_name: str | None = None
    """What the error report's `file` column calls the file; the path as given when unset."""


class Observer(Protocol):
    """Follows an import: the CLI draws its progress bar from these calls."""

    def started(self, run: runs.Run, size: int, start: Position) -> None: ...

    def committed(self, batch: runs.Progress) -> None: ...


@dataclass(frozen=True)
class ImportResult:
    run_id: uuid.UUID
    resumed_after_line: int | None
    """The last line an earlier, interrupted attempt had committed; None for a fresh run."""
    rows: int
    imported: int
    duplicates: int
    failed: int
    report: Path | None
    """The error report, kept only when some row failed."""
    recompute_job_id: uuid.UUID | None


@dataclass
class _Prepared:
    """A batch read and checked in Python, ready for COPY."""

    index: int
    rows: list[Staged]
    problems: list[LineProblem]
    records: int
    rounds: int
    first_line: int
    end: Position


class _Aborted(Exception):
    """An earlier batch failed: this one rolls back instead of committing."""


class _Turns:
    """Batches commit in file order: batch n waits here for batch n - 1 to commit."""

    def __init__(self) -> None:
        self.next = 0
        self.failed = False
        self._changed = asyncio.Condition()

    async def wait(self, index: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.next == index or self.failed)
        if self.failed:
            raise _Aborted

    async def done(self, index: int) -> None:
        async with self._changed:
            self.next = index + 1
            self._changed.notify_all()

    async def fail(self) -> None:
        async with self._changed:
            self.failed = True
            self._changed.notify_all()


def _open_source(
    schema: formats.Schema, path: Path, format_: ImportFormat
) -> tuple[
    CsvReader | NdjsonReader,
    Callable[[Any], tuple[formats.Values, list[formats.Problem]]],
    Position,
]:
    """The reader, the row parser and where the records start; a file whose header (or, for
    NDJSON, first object) does not fit the kind is refused here, before anything is written."""
    try:
        if format_ == ImportFormat.csv:
            csv_reader = CsvReader(path)
            names, end = csv_reader.header()
            header = formats.read_header(schema, names)
            return csv_reader, lambda cells: formats.parse_cells(header, cells), end
        ndjson_reader = NdjsonReader(path)
        first = ndjson_reader.first()
    except (ValueError, csv.Error) as exc:
        raise InvalidInput(f"{path.name}: {exc}.") from None
    if not isinstance(first, dict):
        raise InvalidInput(f"{path.name}: the first line is not a JSON object.")
    formats.check_keys(schema, first)
    return ndjson_reader, lambda value: formats.parse_object(schema, value), Position()


def check_source(kind: ImportKind, path: Path, format_: ImportFormat) -> None:
    """Refuse a file whose header (for NDJSON, first object) does not fit `kind`, as
    `import_file` would, without touching the database."""
    _open_source(formats.SCHEMAS[kind], path, format_)


def _prepare(
    index: int,
    chunk: Chunk,
    parse: Callable[[Any], tuple[formats.Values, list[formats.Problem]]],
    schema: formats.Schema,
    loader: Loader,
    context: Context,
) -> _Prepared:
    """Check each record of a chunk and stage the good ones. Within a batch an interaction
    repeating an `external_id` fails; an upsert repeating its key goes to the next round."""
    rows: list[Staged] = []
    problems: list[LineProblem] = []
    first_seen: dict[Any, int] = {}
    rounds = 1
    key, upsert = schema.key, loader.upsert
    for line, data, problem in chunk.records:
        if problem is not None:
            problems.append((line, "", problem))
            continue
        values, found = parse(data)
        if found:
            problems.extend((line, name, reason) for name, reason in found)
            continue
        round_ = 0
        value = values.get(key)
        if value is not None:
            if upsert:
                round_ = first_seen.get(value, 0)
                first_seen[value] = round_ + 1
                rounds = max(rounds, round_ + 1)
            else:
                first = first_seen.setdefault(value, line)
                if first != line:
                    problems.append((line, key, f"repeats the {key} of line {first}"))
                    continue
        rows.append(loader.stage(line, round_, values, context))
    first_line = chunk.records[0].line  # chunks are never empty
    return _Prepared(index, rows, problems, len(chunk.records), rounds, first_line, chunk.end)


async def _connect(settings: Settings, loader: Loader) -> asyncpg.Connection:
    conn = await asyncpg.connect(
        asyncpg_dsn(settings.require_database_url()), server_settings=_SESSION
    )
    await conn.execute(loader.staging_ddl())
    return conn


async def import_file(
    settings: Settings,
    kind: ImportKind,
    path: Path,
    options: ImportOptions | None = None,
    observer: Observer | None = None,
) -> ImportResult:
    """Import `path`, resuming the unfinished run of this same file if there is one. Rows that
    fail go to `<path>.errors.csv`; every other row is imported."""
    options = options or ImportOptions()
    if options.batch_size < 1:
        raise InvalidInput("The batch size must be at least 1.")
    format_ = options.format or format_of(path)
    schema = formats.SCHEMAS[kind]
    reader, parse, records_start = _open_source(schema, path, format_)
    file = runs.FileIdentity.of(path)
    loader = LOADERS[kind]()
    parallel = max(1, options.parallel) if not loader.upsert else 1

    conn = await _connect(settings, loader)
    extra: list[asyncpg.Connection] = []
    report: ErrorReport | None = None
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        run = await runs.open_run(conn, kind, file, format_.value)
        resumed_after = run.committed.line if run.resumed else None
        start = run.committed if run.committed.offset > records_start.offset else records_start
        report = ErrorReport(
            report_path(path),
            options.source_name or str(path),
            run.report_size if run.resumed else None,
        )
        if observer is not None:
            observer.started(run, file.size, start)
        extra = [await _connect(settings, loader) for _ in range(parallel - 1)]
        context = Context(run.started_at, settings.default_currency, ordered=parallel > 1)
        batches = (
            _prepare(index, chunk, parse, schema, loader, context)
            for index, chunk in enumerate(chunks(reader.records(start), reader, options.batch_size))
        )
        writer = _Writer(kind, loader, run, report, context, observer)
        await writer.write_all([conn, *extra], batches)
        as_of = (options.as_of or datetime.now(UTC)).astimezone(UTC)
        job_id = await runs.finish(conn, run, options.recompute, as_of)
    finally:
        gc.set_threshold(*thresholds)
        for other in extra:
            await other.close()
        await conn.close()
        if report is not None:
            report.close()
    kept = report.path if run.failed else None
    if kept is None:
        report.discard()  # nothing failed: no report to read
    return ImportResult(
        run.id,
        resumed_after,
        run.rows,
        run.imported,
        run.duplicates,
        run.failed,
        kept,
        job_id,
    )


class _Writer:
    """Writes prepared batches on a few connections; each commits after the one before it."""

    def __init__(
        self,
        kind: ImportKind,
        loader: Loader,
        run: runs.Run,
        report: ErrorReport,
        context: Context,
        observer: Observer | None,
    ) -> None:
        self.kind = kind
        self.loader = loader
        self.import_run = run
        self.report = report
        self.context = context
        self.observer = observer
        self.turns = _Turns()
        self.columns = loader.column_names()

    async def write_all(
        self, conns: list[asyncpg.Connection], batches: Iterator[_Prepared]
    ) -> None:
        idle: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
        for conn in conns:
            idle.put_nowait(conn)
        tasks: list[asyncio.Task[None]] = []
        reading = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
        try:
            while not self.turns.failed:
                prepared = await reading
                if prepared is None:
                    break
                reading = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
                conn = await idle.get()
                await self.loader.prepare(conn, prepared.rows)
                tasks.append(asyncio.create_task(self._write(conn, prepared, idle)))
        except BaseException:
            await self.turns.fail()
            for task in tasks:
                task.cancel()
            raise
        finally:
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            # The reading thread finishes its batch before the file is let go.
            await asyncio.wait([reading])
            if not reading.cancelled():
                reading.exception()
        failures = [
            o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, _Aborted)
        ]
        if failures:
            raise failures[0]

    async def _write(
        self, conn: asyncpg.Connection, prepared: _Prepared, idle: asyncio.Queue[asyncpg.Connection]
    ) -> None:
        try:
            async with conn.transaction():
                written = Written()
                if prepared.rows:
                    await conn.copy_records_to_table(
                        STAGING, records=prepared.rows, columns=self.columns
                    )
                    written = await self.loader.write(
                        conn, prepared.rows, prepared.rounds, self.context
                    )
                await self.turns.wait(prepared.index)
                problems = sorted(prepared.problems + written.problems)
                progress = runs.Progress(
                    end=prepared.end,
                    report_size=self.report.write(problems),
                    rows=prepared.records,
                    imported=written.imported,
                    duplicates=written.duplicates,
                    failed=len({line for line, _, _ in problems}),
                    customer_ids=written.customer_ids,
                    first_line=prepared.first_line,
                )
                await runs.checkpoint(conn, self.import_run, self.kind, progress)
            metrics.import_rows(self.kind, progress.imported, progress.duplicates, progress.failed)
            if self.observer is not None:
                self.observer.committed(progress)
            await self.turns.done(prepared.index)
        except BaseException:
            await self.turns.fail()
            raise
        finally:
            idle.put_nowait(conn)

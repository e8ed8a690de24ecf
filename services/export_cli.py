"""`retention export customers|interactions|alerts|scores`: a list's rows, with the list's
filters, streamed from a server-side cursor to a CSV or NDJSON file (or stdout) in constant
memory. `services/cli.py` mounts it."""

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import DBAPIError

from services.api.exports import stream
from services.api.exports.encoding import SUFFIXES, ExportFormat
from services.core.config import Settings, get_settings
from services.core.db import create_engine
from services.core.errors import InvalidInput
from services.core.models.enums import (
    AlertStatus,
    AlertSubject,
    InteractionKind,
    LifecycleStage,
    Severity,
    ValueTier,
)
from services.core.scoring.health import Band

if TYPE_CHECKING:
    from services.api.exports.kinds import Export

# The export code and the filters it shares with the API are imported when an export runs,
# not whenever `retention` starts.

EXIT_INTERRUPTED = 130
FORMATS = "CSV (header row; empty cell = null; tags, attributes and other structured values as JSON text) or NDJSON (one object per line)"

export_app = typer.Typer(
    help="Export a list to CSV or NDJSON, streamed in constant memory. Same filters as the "
    "API's lists; rows oldest first. Prints the row count and rows/s to stderr.",
    no_args_is_help=True,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


Output = Annotated[
    str | None,
    typer.Option(
        "--output", "-o", help="File to write (replaced only once complete); `-` or none: stdout."
    ),
]
Format = Annotated[
    ExportFormat | None,
    typer.Option(
        "--format",
        help="Default: from the --output extension (.csv, .ndjson, .jsonl); csv on stdout.",
    ),
]
ChunkSize = Annotated[int, typer.Option(min=1, max=100_000, help="Rows fetched per round trip.")]
ChannelId = Annotated[uuid.UUID | None, typer.Option(help="Only this channel's.")]
Owner = Annotated[str | None, typer.Option(help="Only this owner's.")]
Tier = Annotated[ValueTier | None, typer.Option(help="Customer value tier.")]
Stage = Annotated[LifecycleStage | None, typer.Option(help="Lifecycle stage.")]
Tag = Annotated[str | None, typer.Option(help="Only customers carrying this tag.")]
CreatedAfter = Annotated[
    str | None, typer.Option(help="ISO 8601 time with a zone: customers created at or after.")
]
CreatedBefore = Annotated[
    str | None, typer.Option(help="ISO 8601 time with a zone: customers created before.")
]
Text = Annotated[str | None, typer.Option("--q", help="Text in name or external_ref.")]
IncludeArchived = Annotated[bool, typer.Option(help="Archived customers too.")]
BandOption = Annotated[
    Band | None, typer.Option("--band", help="Only this band; unscored never match.")
]
ScoreMin = Annotated[float | None, typer.Option(min=0, max=100, help="Score at least this.")]
ScoreMax = Annotated[float | None, typer.Option(min=0, max=100, help="Score at most this.")]


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("not an ISO 8601 time", param_hint=option) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter("needs a time zone (Z or +08:00)", param_hint=option)
    return parsed


def _format(given: ExportFormat | None, output: Path | None) -> ExportFormat:
    if given is not None:
        return given
    if output is None:
        return ExportFormat.csv
    found = SUFFIXES.get(output.suffix.lower())
    if found is None:
        raise typer.BadParameter(
            f"cannot tell the format of {output.name!r}; use .csv, .ndjson or .jsonl, or give it",
            param_hint="--format",
        )
    return found


@contextmanager
def _sink(output: Path | None) -> Iterator[BinaryIO]:
    """stdout, or a file written beside `output` and moved onto it once complete: an
    interrupted export leaves no file that looks whole."""
    if output is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    partial = output.with_name(f".{output.name}.partial")
    try:
        with partial.open("wb") as file:
            yield file
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


async def _write(
    settings: Settings,
    export: "Export",
    format_: ExportFormat,
    output: Path | None,
    chunk_rows: int,
) -> int:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            encoded = await stream.start(conn, export, format_, chunk_rows)
            with _sink(output) as sink:
                async for piece in encoded:
                    sink.write(piece)
            return encoded.rows
    finally:
        await engine.dispose()


def _export(
    build: Callable[[], "Export"],
    output: str | None,
    format_: ExportFormat | None,
    chunk_size: int,
) -> None:
    target = None if output in (None, "-") else Path(str(output))
    if target is not None and not target.parent.is_dir():
        raise typer.BadParameter(f"{target.parent} is not a directory", param_hint="--output")
    chosen = _format(format_, target)
    try:
        export = build()
    except InvalidInput as exc:
        option = exc.errors[0].field.removeprefix("query.").replace("_", "-")
        raise typer.BadParameter(exc.detail, param_hint=f"--{option}") from None
    settings = get_settings()
    if not settings.database_url:
        _fail("DATABASE_URL is not set.")
    started = time.monotonic()
    try:
        rows = asyncio.run(_write(settings, export, chosen, target, chunk_size))
    except KeyboardInterrupt:
        err.print("Interrupted: no file written." if target else "Interrupted.")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    except (OSError, DBAPIError) as exc:
        _fail(f"{type(exc).__name__}: {exc}")
    seconds = time.monotonic() - started
    rate = rows / seconds if seconds > 0 else 0.0
    where = escape(str(target)) if target else "stdout"
    err.print(
        f"Exported {rows:,} {export.kind} as {chosen} to {where} in {seconds:,.1f} s "
        f"({rate:,.0f} rows/s)."
    )


def _customer_command(kind: str) -> Callable[..., None]:
    """`customers` and `scores` take the filters of `GET /v1/customers`."""

    def command(
        output: Output = None,
        format_: Format = None,
        chunk_size: ChunkSize = stream.CHUNK_ROWS,
        channel_id: ChannelId = None,
        owner: Owner = None,
        tier: Tier = None,
        lifecycle_stage: Stage = None,
        tag: Tag = None,
        created_after: CreatedAfter = None,
        created_before: CreatedBefore = None,
        q: Text = None,
        include_archived: IncludeArchived = False,
        band: BandOption = None,
        score_min: ScoreMin = None,
        score_max: ScoreMax = None,
    ) -> None:
        from services.api.customers.service import CustomerFilters
        from services.api.exports import kinds
        from services.api.scoring.schemas import Band as ListBand

        after = _time(created_after, "--created-after")
        before = _time(created_before, "--created-before")
        build = kinds.customers if kind == "customers" else kinds.scores

        def export() -> "Export":
            # Inside _export: filters that contradict each other are a usage error.
            filters = CustomerFilters(
                channel_id,
                owner,
                tier,
                lifecycle_stage,
                tag,
                after,
                before,
                q,
                include_archived,
                None if band is None else ListBand(band),
                score_min,
                score_max,
            )
            return build(filters)

        _export(export, output, format_, chunk_size)

    return command


export_app.command("customers", help=f"Customers with their current score: {FORMATS}.")(
    _customer_command("customers")
)
export_app.command("scores", help=f"Current health scores of scored customers: {FORMATS}.")(
    _customer_command("scores")
)


@export_app.command(help=f"Interactions, oldest first: {FORMATS}.")
def interactions(
    output: Output = None,
    format_: Format = None,
    chunk_size: ChunkSize = stream.CHUNK_ROWS,
    customer_id: Annotated[uuid.UUID | None, typer.Option(help="Only this customer's.")] = None,
    channel_id: ChannelId = None,
    kind: Annotated[InteractionKind | None, typer.Option(help="Only this kind.")] = None,
    external_id: Annotated[str | None, typer.Option(help="The one with this external id.")] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO 8601 time with a zone: occurred at or after.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="ISO 8601 time with a zone: occurred before.")
    ] = None,
) -> None:
    from services.api.exports import kinds
    from services.api.interactions.service import InteractionFilters

    filters = InteractionFilters(
        customer_id,
        channel_id,
        kind,
        external_id,
        _time(since, "--since"),
        _time(until, "--until"),
    )
    _export(lambda: kinds.interactions(filters), output, format_, chunk_size)


@export_app.command(help=f"Alerts, oldest opened first: {FORMATS}.")
def alerts(
    output: Output = None,
    format_: Format = None,
    chunk_size: ChunkSize = stream.CHUNK_ROWS,
    status: Annotated[
        list[AlertStatus] | None, typer.Option(help="Only these statuses; repeat for several.")
    ] = None,
    owner: Owner = None,
    severity: Annotated[Severity | None, typer.Option(help="Only this severity.")] = None,
    channel_id: Annotated[
        uuid.UUID | None, typer.Option(help="The channel's own alerts and its customers'.")
    ] = None,
    rule_id: Annotated[uuid.UUID | None, typer.Option(help="Raised by this rule.")] = None,
    subject: Annotated[AlertSubject | None, typer.Option(help="customer or channel.")] = None,
    subject_id: Annotated[
        uuid.UUID | None, typer.Option(help="One customer's or channel's.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO 8601 time with a zone: opened at or after.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="ISO 8601 time with a zone: opened before.")
    ] = None,
) -> None:
    from services.api.alerts.service import AlertFilters
    from services.api.exports import kinds

    filters = AlertFilters(
        tuple(status or ()),
        owner,
        severity,
        channel_id,
        rule_id,
        subject,
        subject_id,
        _time(since, "--since"),
        _time(until, "--until"),
    )
    _export(lambda: kinds.alerts(filters), output, format_, chunk_size)

"""`retention`: serve the API, run the worker, migrate, manage API keys, import history, load demo
data, run it all."""

import asyncio
import time
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, NoReturn

import asyncpg
import typer
import uvicorn
from redis.asyncio import Redis
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import text

from services.core import demo as demo_data
from services.core import metrics, migrations
from services.core.api_keys import create_api_key
from services.core.config import Settings, get_settings
from services.core.crypto import MissingSecretKey, SecretBox, load_box
from services.core.db import create_engine, create_sessionmaker, session_scope
from services.core.errors import DomainError
from services.core.imports import runs as import_runs
from services.core.imports.reader import Position
from services.core.imports.service import (
    DEFAULT_BATCH_SIZE,
    ImportFormat,
    ImportOptions,
    ImportResult,
    import_file,
)
from services.core.logs import configure_logging
from services.core.models.enums import Scope
from services.core.models.imports import ImportKind
from services.export_cli import export_app
from services.secrets_cli import secrets_app

app = typer.Typer(
    help="retention-service: customer and channel health, alerts and webhooks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
apikey_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")
app.add_typer(export_app, name="export")
app.add_typer(secrets_app, name="secrets")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def database_url(settings: Settings) -> str:
    if not settings.database_url:
        fail("DATABASE_URL is not set (`retention run` starts an embedded PostgreSQL instead).")
    return settings.database_url


def redis_url(settings: Settings) -> str:
    if not settings.redis_url:
        fail("REDIS_URL is not set (`retention run` starts an embedded Redis instead).")
    return settings.redis_url


def secret_box(settings: Settings) -> SecretBox:
    """The key that encrypts stored webhook secrets; the API and the worker need it."""
    try:
        return load_box(settings)
    except (MissingSecretKey, ValueError) as exc:
        fail(str(exc))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [default: RETENTION_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: RETENTION_PORT]")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
) -> None:
    """Serve the HTTP API with uvicorn."""
    settings = get_settings()
    database_url(settings)
    redis_url(settings)
    secret_box(settings)
    configure_logging(settings.log_level)
    # Several processes share their metrics through files (prometheus-client's multiprocess
    # mode); one process keeps them in memory. Access lines come from the app's middleware.
    with metrics.multiprocess_directory(settings.metrics_dir) if workers > 1 else nullcontext():
        uvicorn.run(
            "services.api.server:create_served_app",
            factory=True,
            host=settings.host if host is None else host,
            port=settings.port if port is None else port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            log_config=None,
            log_level=settings.log_level.lower(),
            access_log=False,
            timeout_graceful_shutdown=10,
        )


async def _check_servers(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        fail(f"PostgreSQL is unreachable: {type(exc).__name__}: {exc}")
    finally:
        await engine.dispose()
    redis = Redis.from_url(redis_url(settings), socket_connect_timeout=5)
    try:
        await redis.ping()
    except Exception as exc:
        fail(f"Redis is unreachable: {type(exc).__name__}: {exc}")
    finally:
        await redis.aclose()


@app.command()
def worker() -> None:
    """Run the scorer: an arq worker consuming events and running scheduled jobs."""
    from services.scorer.worker import create_worker

    settings = get_settings()
    database_url(settings)
    redis_url(settings)
    secret_box(settings)
    configure_logging(settings.log_level)
    # arq's Worker runs on the thread's event loop; the checks run on that same loop first.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = None
    try:
        loop.run_until_complete(_check_servers(settings))
        if settings.worker_metrics_port:
            server = metrics.serve_worker_metrics(
                settings.worker_metrics_host, settings.worker_metrics_port
            )
        create_worker(settings).run()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        loop.close()


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest revision."""
    try:
        migrations.upgrade(database_url(get_settings()))
    except MissingSecretKey as exc:
        fail(str(exc))
    out.print("[green]Database is at the latest revision.[/]")


def _scopes(value: str) -> set[Scope]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in Scope.__members__]
    if unknown or not names:
        allowed = ", ".join(Scope)
        raise typer.BadParameter(
            f"unknown scope {', '.join(unknown) or '(none)'}; use {allowed}", param_hint="--scopes"
        )
    return {Scope(name) for name in names}


async def _create_key(
    settings: Settings,
    name: str,
    scopes: set[Scope],
    expires_at: datetime | None,
    rate_limit: int | None,
) -> tuple[str, str, str]:
    engine = create_engine(settings)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            new = await create_api_key(session, name, scopes, expires_at, rate_limit)
        return str(new.record.id), new.record.prefix, new.key
    finally:
        await engine.dispose()


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated: read, write (includes read), admin (includes all)")
    ] = "read",
    expires_in_days: Annotated[
        int | None,
        typer.Option(min=1, max=36_500, help="The key stops working after this many days"),
    ] = None,
    rate_limit_per_minute: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=1_000_000,
            help="Its own rate limit [default: RETENTION_RATE_LIMIT_PER_MINUTE]; 0: none",
        ),
    ] = None,
) -> None:
    """Create an API key. The key is shown once, alone on the last line of output."""
    if not name.strip() or len(name) > 200:
        raise typer.BadParameter("must be 1 to 200 characters", param_hint="--name")
    granted = _scopes(scopes)
    expires_at = (
        None
        if expires_in_days is None
        else datetime.now(UTC).replace(microsecond=0) + timedelta(days=expires_in_days)
    )
    settings = get_settings()
    database_url(settings)
    key_id, prefix, key = asyncio.run(
        _create_key(settings, name, granted, expires_at, rate_limit_per_minute)
    )
    out.print(f"Created API key [bold]{escape(name)}[/] ({key_id})")
    out.print(f"  scopes: {', '.join(sorted(granted))}   prefix: {prefix}")
    if expires_at is not None:
        out.print(f"  expires: {expires_at.isoformat()}")
    out.print("  Store it now: it is not shown again.")
    typer.echo(key)


async def _load_demo(settings: Settings) -> demo_data.DemoResult:
    engine = create_engine(settings)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            return await demo_data.load(session)
    finally:
        await engine.dispose()


@app.command()
def demo() -> None:
    """Load the demo data set; loading it again changes nothing."""
    settings = get_settings()
    database_url(settings)
    result = asyncio.run(_load_demo(settings))
    out.print(
        f"Demo data: inserted {result.channels} channels, {result.customers} customers, "
        f"{result.tickets} tickets, {result.interactions} interactions."
    )


EXIT_ROWS_FAILED = 2
EXIT_INTERRUPTED = 130
IMPORT_HELP = (
    'Import history from CSV or NDJSON (columns: README, "Importing history").\n\n'
    "Rows that fail go to FILE.errors.csv (file, line, field, reason); every other row is "
    "imported, a batch at a time. Run the same command again to resume an interrupted import."
    "\n\nExit status: 0 when every row was imported or already stored, 2 when some rows failed, "
    "1 when the file or the database could not be used, 130 when interrupted."
)


class _ImportProgress:
    """A progress bar on stderr: bytes committed for the bar and the ETA, rows/s beside it."""

    def __init__(self, kind: ImportKind) -> None:
        self.kind = kind
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]:>12,} rows  {task.fields[rate]:>9,.0f} rows/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
        )
        self.task: TaskID | None = None
        self.rows = 0
        self.line = 0
        self.clock = time.monotonic()

    def started(self, run: import_runs.Run, size: int, start: Position) -> None:
        if run.resumed:
            err.print(f"Resuming the import after line {run.committed.line:,}.")
        self.line = start.line
        self.clock = time.monotonic()
        self.bar.start()
        self.task = self.bar.add_task(
            f"importing {self.kind}", total=max(size, 1), completed=start.offset, rows=0, rate=0.0
        )

    def committed(self, batch: import_runs.Progress) -> None:
        self.rows += batch.rows
        self.line = batch.end.line
        rate = self.rows / max(time.monotonic() - self.clock, 1e-6)
        if self.task is not None:
            self.bar.update(self.task, completed=batch.end.offset, rows=self.rows, rate=rate)

    def stop(self) -> None:
        self.bar.stop()


def _as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("not an ISO 8601 time", param_hint="--as-of") from None
    if parsed.tzinfo is None:
        raise typer.BadParameter("needs a time zone (Z or +08:00)", param_hint="--as-of")
    return parsed


def _print_import(result: ImportResult, file: Path, rows_now: int, seconds: float) -> None:
    """The counts of the whole run; the rate of this attempt alone."""
    rate = rows_now / seconds if seconds > 0 else 0.0
    head = f"{escape(str(file))}: {result.rows:,} rows"
    if result.resumed_after_line is not None:
        head += f" ({rows_now:,} after line {result.resumed_after_line:,}, where it resumed)"
    out.print(f"{head} in {seconds:,.1f} s ({rate:,.0f} rows/s)")
    out.print(
        f"  imported {result.imported:,}   skipped as duplicate {result.duplicates:,}   "
        f"failed {result.failed:,}"
    )
    if result.report is not None:
        out.print(f"  error report: {escape(str(result.report))}")
    if result.recompute_job_id is not None:
        out.print(
            f"  recompute job {result.recompute_job_id} queued: GET /v1/jobs/{result.recompute_job_id}"
        )


@app.command("import", help=IMPORT_HELP)
def import_(
    kind: Annotated[ImportKind, typer.Argument(help="What the file holds.")],
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="A CSV or NDJSON file."),
    ],
    format_: Annotated[
        ImportFormat | None,
        typer.Option("--format", help="Default: from the extension (.csv, .ndjson, .jsonl)."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Rows per transaction.")
    ] = DEFAULT_BATCH_SIZE,
    recompute: Annotated[
        bool,
        typer.Option(help="Queue a recompute of the customers written, once the import ends."),
    ] = True,
    as_of: Annotated[
        str | None,
        typer.Option(help="ISO 8601 time with a zone the recompute scores as of. Default: now."),
    ] = None,
) -> None:
    """Import history from CSV or NDJSON (the help shown is IMPORT_HELP)."""
    options = ImportOptions(
        format=format_, batch_size=batch_size, recompute=recompute, as_of=_as_of(as_of)
    )
    settings = get_settings()
    database_url(settings)
    progress = _ImportProgress(kind)
    started = time.monotonic()
    try:
        result = asyncio.run(import_file(settings, kind, file, options, progress))
    except KeyboardInterrupt:
        progress.stop()
        err.print(
            f"Interrupted: committed up to line {progress.line:,}. "
            "Run the same command again to resume."
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except DomainError as exc:
        progress.stop()
        fail(str(exc))
    except (OSError, asyncpg.PostgresError) as exc:
        progress.stop()
        fail(f"{type(exc).__name__}: {exc}")
    progress.stop()
    _print_import(result, file, progress.rows, time.monotonic() - started)
    if result.failed:
        raise typer.Exit(EXIT_ROWS_FAILED)


@app.command()
def run() -> None:
    """Run everything on one machine: servers (embedded if unset), migrations, demo, API, worker."""
    from services import launcher

    raise typer.Exit(launcher.run(get_settings(), out, err))


if __name__ == "__main__":
    app()

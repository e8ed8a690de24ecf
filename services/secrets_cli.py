"""`retention secrets new-key|reencrypt`: the key that encrypts webhook secrets at rest
(services/core/crypto.py). `services/cli.py` mounts it."""

import asyncio
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from services.core.config import Settings, get_settings
from services.core.crypto import MissingSecretKey, SecretBox, UndecryptableSecret, load_box, new_key
from services.core.db import create_engine, create_sessionmaker, session_scope
from services.core.webhooks.encryption import reencrypt_all

secrets_app = typer.Typer(
    help="The key that encrypts webhook secrets at rest (RETENTION_SECRET_KEY).",
    no_args_is_help=True,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(1)


@secrets_app.command("new-key")
def new_key_command() -> None:
    """Print a new key, e.g. for `RETENTION_SECRET_KEY=$(retention secrets new-key)`."""
    typer.echo(new_key())


async def _reencrypt(settings: Settings, box: SecretBox) -> int:
    engine = create_engine(settings)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            return await reencrypt_all(session, box)
    finally:
        await engine.dispose()


@secrets_app.command("reencrypt")
def reencrypt_command() -> None:
    """Re-encrypt every stored webhook secret under the first key of RETENTION_SECRET_KEY.

    To change the key: put a new key first (`NEW,OLD`) on every API and worker process, run
    this, then drop the old key."""
    settings = get_settings()
    if not settings.database_url:
        _fail("DATABASE_URL is not set.")
    try:
        box = load_box(settings)
    except (MissingSecretKey, ValueError) as exc:
        _fail(str(exc))
    try:
        count = asyncio.run(_reencrypt(settings, box))
    except UndecryptableSecret as exc:
        _fail(f"nothing changed: {exc}; add the key they were encrypted with")
    out.print(f"Re-encrypted the secrets of {count} webhook endpoints under the first key.")

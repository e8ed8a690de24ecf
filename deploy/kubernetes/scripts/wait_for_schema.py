"""Init container of the api and scorer pods: wait until the database schema has this image's
migrations applied, so a new release never serves against the schema of the previous one.

Ready (exit 0) when every head revision of the image's `migrations/` is the database's revision
or one of its ancestors, or when the database is at a revision this image does not know (a newer
release's: a rollback, which relies on migrations staying compatible with the previous release).
Otherwise it prints what it waits for and checks again every `--interval` seconds; `--once`
checks once and exits 1 when not ready. Reads DATABASE_URL like every other process.

Usage: python wait_for_schema.py [--once] [--interval 2]
"""

import argparse
import asyncio
import sys
import time

import asyncpg
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util import CommandError

from services.core.config import Settings
from services.core.db import asyncpg_dsn
from services.core.migrations import alembic_config


async def applied_revisions(dsn: str) -> set[str]:
    """The revisions in `alembic_version`; none before the first migration."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        if not await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL"):
            return set()
        return {row[0] for row in await conn.fetch("SELECT version_num FROM alembic_version")}
    finally:
        await conn.close()


def missing_heads(script: ScriptDirectory, applied: set[str]) -> set[str]:
    """This image's head revisions that the database has not reached; empty when ready."""
    heads = set(script.get_heads())
    reached: set[str] = set()
    for revision in applied:
        try:
            reached.update(r.revision for r in script.iterate_revisions(revision, "base"))
        except (ResolutionError, CommandError):
            return set()  # a revision this image does not know: the database is ahead
    return heads - reached


def check(settings: Settings, script: ScriptDirectory) -> str | None:
    """None when ready, else what is missing."""
    dsn = asyncpg_dsn(settings.require_database_url())
    try:
        applied = asyncio.run(applied_revisions(dsn))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL unreachable: {type(exc).__name__}: {exc}"
    missing = missing_heads(script, applied)
    if not missing:
        return None
    at = ", ".join(sorted(applied)) or "no revision"
    return f"database at {at}; this image needs {', '.join(sorted(missing))}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="check once: exit 1 when not ready")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between checks")
    args = parser.parse_args()

    settings = Settings()
    script = ScriptDirectory.from_config(alembic_config(settings.require_database_url()))
    while (waiting := check(settings, script)) is not None:
        sys.stderr.write(f"waiting for migrations: {waiting}\n")
        sys.stderr.flush()
        if args.once:
            return 1
        time.sleep(args.interval)
    sys.stdout.write("schema is current\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make fuzz`: schemathesis against the committed OpenAPI document, on a served API.

Serves the API with uvicorn on a new, migrated database, as `retention serve` does, gives
schemathesis an admin key, and runs every operation with generated valid and invalid input.
It fails on any 5xx and on any answer the document does not describe (status code, content
type, headers or body). Exits with schemathesis's status; the database is dropped afterwards.

Usage: python -m tests.fuzz [--max-examples N] [extra schemathesis options]
"""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from services.core import migrations
from services.core.api_keys import create_api_key
from services.core.config import Settings
from services.core.crypto import new_key
from services.core.db import create_engine, create_sessionmaker, session_scope
from services.core.models.enums import Scope
from tests import servers

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "openapi" / "openapi.json"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


async def _key(settings: Settings) -> str:
    engine = create_engine(settings)
    async with session_scope(create_sessionmaker(engine)) as session:
        new = await create_api_key(session, "fuzz", {Scope.admin})
    await engine.dispose()
    return new.key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "services.api.app:create_app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("the API did not start")


def main(argv: list[str]) -> int:
    server, redis, stops = servers.resolve()
    name = f"retention_fuzz_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    scratch = Path(tempfile.mkdtemp(prefix="retention-fuzz-"))
    try:
        migrations.upgrade(url)
        settings = Settings(database_url=url, redis_url=redis, queue_name=name)
        key = asyncio.run(_key(settings))
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": redis,
            "RETENTION_QUEUE_NAME": name,
            "RETENTION_DATA_DIR": str(scratch),
            "RETENTION_IMPORT_DIR": str(scratch / "imports"),
            "RETENTION_SECRET_KEY": new_key(),
            # Thousands of requests a minute from one key: a limit would only cut coverage.
            "RETENTION_RATE_LIMIT_PER_MINUTE": "0",
        }
        port = _free_port()
        api = _serve(env, port)
        try:
            command = [
                str(Path(sys.executable).with_name("st")),
                "run",
                str(DOCUMENT),
                "--url",
                f"http://127.0.0.1:{port}",
                "--header",
                f"Authorization: Bearer {key}",
                "--checks",
                CHECKS,
                "--max-examples",
                "25",
                "--seed",
                "20261123",
                "--workers",
                "2",
                "--no-color",
                *argv,
            ]
            return subprocess.run(command, cwd=scratch, check=False).returncode
        finally:
            api.terminate()
            api.wait(timeout=30)
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(scratch, ignore_errors=True)
        for stop in stops:
            stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

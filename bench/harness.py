"""What the benchmarks share: a scratch database, an API key, servers started as in production."""

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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

ROOT = Path(__file__).resolve().parents[1]
SERVER = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

# What the processes need beyond the bench's own settings: a key for stored webhook secrets,
# no per-key rate limit (the bench is one key sending hundreds of requests a second), no
# metrics port (several workers share this machine's ports), and quiet logs.
PROCESS_ENV = {
    "RETENTION_SECRET_KEY": new_key(),
    "RETENTION_RATE_LIMIT_PER_MINUTE": "0",
    "RETENTION_WORKER_METRICS_PORT": "0",
    "RETENTION_LOG_LEVEL": "warning",
}


async def _admin(statement: str) -> None:
    engine = create_async_engine(SERVER, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


@contextmanager
def scratch_database() -> Iterator[Settings]:
    """A migrated database of its own, dropped afterwards."""
    name = f"retention_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    try:
        migrations.upgrade(url)
        yield Settings(database_url=url, redis_url=REDIS, queue_name=f"bench-{name}")
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def admin_key(settings: Settings) -> str:
    engine = create_engine(settings)
    async with session_scope(create_sessionmaker(engine)) as session:
        new = await create_api_key(session, "bench", {Scope.admin})
    await engine.dispose()
    return new.key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def uvicorn(factory: str, settings: Settings, workers: int) -> Iterator[str]:
    """Serve `factory` the way `retention serve` does, and yield its base URL once it answers."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.require_database_url(),
        "REDIS_URL": settings.require_redis_url(),
        "PYTHONPATH": str(ROOT),
        **PROCESS_ENV,
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    ]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/docs", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"{factory} did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def wrk(
    url: str,
    connections: int,
    seconds: int,
    headers: dict[str, str],
    paths: list[str] | None = None,
) -> float:
    """Requests per second that wrk measured; wrk is a compiled load generator. With `paths`,
    each request asks for one of them at random (a Lua script of wrk's), else for `url`."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (make bench does this)")
    command = [binary, "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if paths:
            listed = ",".join(f'"{path}"' for path in paths)
            script.write(
                f"local paths = {{{listed}}}\n"
                "request = function()\n"
                "  return wrk.format(nil, paths[math.random(#paths)])\n"
                "end\n"
            )
            script.flush()
            command += ["-s", script.name]
        output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"{non_2xx[1]} failed requests against {url}:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert match, output
    return float(match[1])

"""The `retention` console script, run as a subprocess against real servers."""

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.api_keys import hash_key
from services.core.config import Settings
from tests.conftest import SECRET_KEY
from tests.helpers import count_rows

RETENTION = Path(sys.executable).with_name("retention")
KEY = re.compile(r"^\s*(rk_[A-Za-z0-9_-]{43})\s*$", re.MULTILINE)
DEMO_TABLES = (
    "channels",
    "customers",
    "customer_channel_memberships",
    "tickets",
    "interactions",
    "outbox_events",
    "audit_events",
)


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return {**env, **overrides}


def _servers_env(settings: Settings) -> dict[str, str]:
    return _env(
        DATABASE_URL=settings.require_database_url(),
        REDIS_URL=settings.require_redis_url(),
        RETENTION_QUEUE_NAME=settings.queue_name,
        RETENTION_SECRET_KEY=SECRET_KEY,
    )


async def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # cwd away from the repository, so no `.env` there can change the settings under test.
    return await asyncio.to_thread(
        subprocess.run,
        [str(RETENTION), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_apikey_create_prints_a_working_key_last(
    settings: Settings, app: FastAPI, engine: AsyncEngine, tmp_path: Path
) -> None:
    result = await _cli(
        "apikey", "create", "--name", "ops", "--scopes", "read,write",
        env=_servers_env(settings), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    key = result.stdout.splitlines()[-1]
    assert re.fullmatch(r"rk_[A-Za-z0-9_-]{43}", key)
    assert "read, write" in result.stdout
    where = "key_hash = :h AND name = 'ops' AND scopes = ARRAY['read', 'write']"
    assert await count_rows(engine, "api_keys", where, h=hash_key(key)) == 1
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        assert (await client.get("/v1/channels")).status_code == 200
        assert (await client.get("/v1/api-keys")).status_code == 403


@pytest.mark.parametrize("scopes", ["root", "read,root", ""])
async def test_apikey_create_rejects_bad_scopes_and_writes_nothing(
    settings: Settings, engine: AsyncEngine, tmp_path: Path, scopes: str
) -> None:
    result = await _cli(
        "apikey", "create", "--name", "ops", "--scopes", scopes,
        env=_servers_env(settings), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--scopes" in result.stderr
    assert "unknown scope" in result.stderr
    assert "rk_" not in result.stdout
    assert await count_rows(engine, "api_keys") == 0


async def test_demo_loads_once_and_again_changes_nothing(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    first = await _cli("demo", env=_servers_env(settings), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    counts = {table: await count_rows(engine, table) for table in DEMO_TABLES}
    assert all(counts.values()), counts
    assert counts["channels"] == 5
    assert counts["customers"] == 40
    assert counts["interactions"] >= 300
    # One outbox event per batch: the interactions and the tickets.
    assert await count_rows(engine, "outbox_events", "type = 'interactions.created'") == 1
    assert await count_rows(engine, "outbox_events", "type = 'tickets.changed'") == 1
    assert await count_rows(engine, "customers", "name = '杭州云帆科技有限公司'") == 1
    orders = "kind = 'order' AND currency = 'CNY' AND amount > 0"
    assert await count_rows(engine, "interactions", orders) > 50
    past = "occurred_at < now() - interval '180 days'"
    assert await count_rows(engine, "interactions", past) > 0

    second = await _cli("demo", env=_servers_env(settings), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "inserted 0 channels, 0 customers, 0 tickets, 0 interactions" in second.stdout
    assert {table: await count_rows(engine, table) for table in DEMO_TABLES} == counts


async def test_worker_exits_with_a_message_when_redis_is_unreachable(
    settings: Settings, tmp_path: Path
) -> None:
    env = {**_servers_env(settings), "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = await _cli("worker", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "Redis is unreachable" in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def test_run_boots_on_embedded_servers_and_stops_cleanly_on_sigint(private_dir: Path) -> None:
    tmp_path = private_dir
    data, port = tmp_path / "data", _free_port()
    env = _env(RETENTION_DATA_DIR=str(data), RETENTION_PORT=str(port), RETENTION_HOST="127.0.0.1")
    log = tmp_path / "run.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [str(RETENTION), "run"], env=env, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 90
        key = None
        while key is None:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            match = KEY.search(log.read_text())
            key = match.group(1) if match else None
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=5) as client:
            assert client.get("/readyz").status_code == 200
            assert client.get("/docs").status_code == 200
            channels = client.get("/v1/channels", headers={"Authorization": f"Bearer {key}"})
        assert channels.status_code == 200, channels.text
        refs = {c["external_ref"] for c in channels.json()["items"]}
        assert {f"demo-ch-0{n}" for n in range(1, 6)} <= refs
        assert f"{base}/docs" in log.read_text()
        assert (data / "demo-key").read_text().strip() == key
        assert (data / "demo-key").stat().st_mode & 0o777 == 0o600

        started = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        postmaster = int((data / "postgres" / "postmaster.pid").read_text().split()[0])
        assert len(started) >= 3  # api, worker, redis
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert all(_gone(pid) for pid in [*started, postmaster]), log.read_text()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))

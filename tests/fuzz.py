"""`make fuzz`: schemathesis against the committed OpenAPI document, on a served API.

Serves the API with uvicorn on a new, migrated database, as `retention serve` does, seeds a few
records that generated input cannot make there (see `_seed`), gives schemathesis an admin key,
and runs every operation with generated valid and invalid input; its stateful phase follows the
document's links from each create to the operations on what it made. It fails on any 5xx and on
any answer the document does not describe (status code, content type, headers or body). Exits
with schemathesis's status; the database and the run's Redis keys are dropped afterwards.

Usage: python -m tests.fuzz [--max-examples N] [extra schemathesis options]
"""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from arq import create_pool
from arq.connections import RedisSettings
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from services.core import migrations
from services.core.api_keys import create_api_key
from services.core.config import Settings
from services.core.crypto import new_key
from services.core.db import create_engine, create_sessionmaker, session_scope
from services.core.models.enums import Scope
from services.scorer.relay import relay_pending
from tests import servers
from tests.scorer.workers import run_burst

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
# By default the stateful phase runs as many scenarios as `--max-examples`, of 6 steps: too few
# to walk the links from creates to the operations on what they made.
STATEFUL = """
[phases.stateful]
max-steps = 10

[phases.stateful.generation]
max-examples = 300
"""

# The seeded webhook's target: the discard port on loopback. Nothing is delivered while the
# fuzz runs (no worker), but its URL must pass the check that every webhook URL resolves.
SEED_WEBHOOK_URL = "http://127.0.0.1:9/retention"
SEED_CUSTOMERS = 6

# Operations whose records only the seed has (no create makes them, or only the worker fills
# them in), by path: the path parameter they take and where in the seed its values are.
SEEDED = (
    ("^/v1/customers/[^/]+/health", "customer_id", "customer"),
    ("^/v1/channels/[^/]+/health", "channel_id", "channel"),
    ("^/v1/alerts/", "alert_id", "alert"),
    ("^/v1/imports/", "job_id", "import"),
    ("^/v1/webhook-deliveries/", "delivery_id", "delivery"),
)
# How often those operations take a seeded id rather than a generated one.
SEEDED_PROBABILITY = 0.5


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


def _config(seeded: dict[str, list[str]]) -> str:
    """The schemathesis configuration: the stateful budget, and the seeded ids as dictionaries
    for the operations in SEEDED."""
    dictionaries = "".join(
        f"[dictionaries.{name}]\nvalues = {json.dumps(ids)}\n\n" for name, ids in seeded.items()
    )
    operations = "".join(
        f"[[operations]]\ninclude-path-regex = {json.dumps(path)}\n"
        f'parameters = {{ "path.{parameter}" = '
        f'{{ dictionary = "{name}", probability = {SEEDED_PROBABILITY} }} }}\n\n'
        for path, parameter, name in SEEDED
    )
    return f"{STATEFUL}\n{dictionaries}{operations}"


async def _seed(base_url: str, key: str, settings: Settings) -> dict[str, list[str]]:
    """What generated input cannot make here, so that the operations on it are fuzzed past
    their 404: a ticket and interactions (their creates must name an existing customer), scores,
    alerts and an import's error report (the worker makes them), and webhooks with a delivery
    (a generated URL's host does not resolve). Returns the ids SEEDED names."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:

        async def create(path: str, **request: Any) -> dict[str, Any]:
            response = await client.post(path, **request)
            if not response.is_success or response.json().get("errors"):
                raise SystemExit(
                    f"seeding: POST {path} answered {response.status_code}: {response.text}"
                )
            created: dict[str, Any] = response.json()
            return created

        channel = await create("/v1/channels", json={"name": "Fuzz channel", "type": "agent"})
        customers = [
            await create(
                "/v1/customers",
                json={
                    "name": f"Fuzz {n}",
                    "external_ref": f"fuzz-{n}",
                    "channel_id": channel["id"],
                },
            )
            for n in range(SEED_CUSTOMERS)
        ]
        now = datetime.now(UTC)
        # Three complaints in 90 days each: the migrations' default rules open an alert for each
        # customer, enough that some stay open while the fuzz resolves and dismisses others.
        complaints = [
            {
                "customer_id": customer["id"],
                "kind": "complaint",
                "occurred_at": (now - timedelta(days=days)).isoformat(),
            }
            for customer in customers
            for days in (1, 2, 3)
        ]
        await create("/v1/interactions/batch", json={"items": complaints})
        await create(
            "/v1/tickets",
            json={"customer_id": customers[0]["id"], "subject": "Late", "kind": "complaint"},
        )
        # The second row names no customer: the import has an error report.
        rows = f"customer_external_ref,kind,occurred_at\nfuzz-0,visit,{now.isoformat()}\n"
        rows += f"nobody,visit,{now.isoformat()}\n"
        job = await create(
            "/v1/imports",
            data={"kind": "interactions"},
            files={"file": ("history.csv", rows.encode(), "text/csv")},
        )
        await _work(settings)
        deliveries = []
        # Several: the fuzz deletes webhooks it finds, and their deliveries go with them.
        for _ in range(3):
            webhook = await create(
                "/v1/webhooks", json={"url": SEED_WEBHOOK_URL, "event_types": ["*"]}
            )
            sent = await create(f"/v1/webhooks/{webhook['id']}/test")
            deliveries.append(sent["delivery_id"])
        alerts = (await client.get("/v1/alerts")).json()["items"]
        if not alerts:
            raise SystemExit("seeding: the worker opened no alert")
        return {
            "customer": [customer["id"] for customer in customers],
            "channel": [channel["id"]],
            "alert": [alert["id"] for alert in alerts],
            "import": [job["id"]],
            "delivery": deliveries,
        }


async def _work(settings: Settings) -> None:
    """Relay the outbox and run the worker until nothing is left to do."""
    engine = create_engine(settings)
    redis = await create_pool(
        RedisSettings.from_dsn(settings.require_redis_url()), default_queue_name=settings.queue_name
    )
    try:
        while await relay_pending(create_sessionmaker(engine), redis, settings.queue_name):
            await run_burst(settings)
    finally:
        await redis.aclose()
        await engine.dispose()


async def _forget(redis_url: str, queue_name: str) -> None:
    """The run's keys: its queue's and its jobs' (arq names them after the queue)."""
    redis = Redis.from_url(redis_url)
    keys = [k async for k in redis.scan_iter(f"{queue_name}*")]
    keys += [k async for k in redis.scan_iter(f"arq:*:{queue_name}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


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
        secret_key = new_key()
        settings = Settings(
            database_url=url,
            redis_url=redis,
            queue_name=name,
            data_dir=scratch,
            import_dir=scratch / "imports",
            secret_key=SecretStr(secret_key),
            webhook_allow_private=True,
        )
        key = asyncio.run(_key(settings))
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": redis,
            "RETENTION_QUEUE_NAME": name,
            "RETENTION_DATA_DIR": str(settings.data_dir),
            "RETENTION_IMPORT_DIR": str(settings.import_dir),
            "RETENTION_SECRET_KEY": secret_key,
            "RETENTION_WEBHOOK_ALLOW_PRIVATE": "true",
            # Thousands of requests a minute from one key: a limit would only cut coverage.
            "RETENTION_RATE_LIMIT_PER_MINUTE": "0",
        }
        port = _free_port()
        api = _serve(env, port)
        try:
            seeded = asyncio.run(_seed(f"http://127.0.0.1:{port}", key, settings))
            config = scratch / "schemathesis.toml"
            config.write_text(_config(seeded), encoding="utf-8")
            command = [
                str(Path(sys.executable).with_name("st")),
                "--config-file",
                str(config),
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
        asyncio.run(_forget(redis, name))
        shutil.rmtree(scratch, ignore_errors=True)
        for stop in stops:
            stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

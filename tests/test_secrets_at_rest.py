"""Webhook secrets at rest: the migration that encrypts stored plaintext secrets (and its
undoing), moving secrets to a new key, and the commands that need or manage the key."""

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from standardwebhooks.webhooks import Webhook

import services.core.config
from services.core import migrations
from services.core.config import Settings
from services.core.crypto import MissingSecretKey, SecretBox, new_key
from services.core.webhooks.signing import headers, new_secret
from services.scorer.jobs.webhooks import _secrets
from tests.conftest import BOX, SECRET_KEY

RETENTION = Path(sys.executable).with_name("retention")
BEFORE = "161eeeb3bd08"
"""The revision before webhook secrets were encrypted."""


async def _rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(sql), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


async def _plaintext_endpoints(url: str) -> dict[uuid.UUID, tuple[str, str | None]]:
    """Two endpoints as stored before encryption: one mid-rotation, one not."""
    stored = {uuid.uuid4(): (new_secret(), new_secret()), uuid.uuid4(): (new_secret(), None)}
    for endpoint_id, (secret, previous) in stored.items():
        await _rows(
            url,
            "INSERT INTO webhook_endpoints (id, url, event_types, secret, previous_secret, "
            "previous_secret_expires_at) VALUES (:id, 'https://hooks.example.com/r', "
            "ARRAY['*'], :secret, :previous, :expires)",
            id=endpoint_id,
            secret=secret,
            previous=previous,
            expires=datetime.now(UTC) + timedelta(hours=1) if previous else None,
        )
    return stored


async def _stored(url: str) -> dict[uuid.UUID, Any]:
    rows = await _rows(url, "SELECT * FROM webhook_endpoints")
    return {row.id: row for row in rows}


async def test_the_migration_encrypts_plaintext_secrets_and_signatures_still_verify(
    make_database: Callable[[], Awaitable[str]],
) -> None:
    url = await make_database()
    await asyncio.to_thread(migrations.upgrade, url, BEFORE)
    plaintext = await _plaintext_endpoints(url)

    await asyncio.to_thread(migrations.upgrade, url, "head", BOX)
    stored = await _stored(url)
    now = datetime.now(UTC)
    for endpoint_id, (secret, previous) in plaintext.items():
        row = stored[endpoint_id]
        assert not row.secret.startswith("whsec_")
        assert BOX.decrypt(row.secret) == secret
        if previous is None:
            assert row.previous_secret is None
        else:
            assert not row.previous_secret.startswith("whsec_")
            assert BOX.decrypt(row.previous_secret) == previous
        # What the worker signs with, read from the migrated row, verifies with the secrets
        # the receiver always had.
        body = b'{"type":"webhook.test"}'
        signed = headers("msg_1", int(now.timestamp()), body, _secrets(BOX, row, now))
        for held in (secret, previous):
            if held is not None:
                Webhook(held).verify(body, signed)

    await asyncio.to_thread(migrations.downgrade, url, BEFORE, BOX)
    restored = await _stored(url)
    assert {i: (r.secret, r.previous_secret) for i, r in restored.items()} == plaintext


async def test_without_a_key_the_migration_fails_and_changes_nothing(
    make_database: Callable[[], Awaitable[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = await make_database()
    await asyncio.to_thread(migrations.upgrade, url, BEFORE)
    plaintext = await _plaintext_endpoints(url)
    keyless = Settings(
        database_url=url,
        data_dir=tmp_path,
        secret_key=None,
        _env_file=None,
    )
    monkeypatch.setattr(services.core.config, "get_settings", lambda: keyless)
    with pytest.raises(MissingSecretKey):
        await asyncio.to_thread(migrations.upgrade, url, "head")
    (version,) = await _rows(url, "SELECT version_num FROM alembic_version")
    assert version.version_num == BEFORE
    stored = await _stored(url)
    assert {i: (r.secret, r.previous_secret) for i, r in stored.items()} == plaintext


async def test_an_empty_database_migrates_without_a_key(
    make_database: Callable[[], Awaitable[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = await make_database()
    keyless = Settings(database_url=url, data_dir=tmp_path, _env_file=None)
    monkeypatch.setattr(services.core.config, "get_settings", lambda: keyless)
    await asyncio.to_thread(migrations.upgrade, url)
    (version,) = await _rows(url, "SELECT version_num FROM alembic_version")
    assert version.version_num != BEFORE


# The commands


def _env(settings: Settings | None, **overrides: str) -> dict[str, str]:
    names = ("DATABASE_URL", "REDIS_URL", "RETENTION_SECRET_KEY", "RETENTION_DATA_DIR")
    env = {k: v for k, v in os.environ.items() if k not in names}
    if settings is not None:
        env |= {
            "DATABASE_URL": settings.require_database_url(),
            "REDIS_URL": settings.require_redis_url(),
            "RETENTION_QUEUE_NAME": settings.queue_name,
        }
    return {**env, **overrides}


async def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # cwd away from the repository, so no `.env` or `.data` there changes the settings.
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


@pytest.mark.parametrize("command", ["serve", "worker"])
async def test_the_api_and_worker_refuse_to_start_without_a_key(
    command: str, settings: Settings, tmp_path: Path
) -> None:
    result = await _cli(command, env=_env(settings), cwd=tmp_path)
    assert result.returncode == 1
    assert "RETENTION_SECRET_KEY is not set" in result.stderr
    assert "retention secrets new-key" in result.stderr
    bad = await _cli(command, env=_env(settings, RETENTION_SECRET_KEY="nope"), cwd=tmp_path)
    assert bad.returncode == 1
    assert "key 1 of RETENTION_SECRET_KEY is not a Fernet key" in bad.stderr


async def test_new_key_prints_a_usable_key(tmp_path: Path) -> None:
    result = await _cli("secrets", "new-key", env=_env(None), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert SecretBox([key]).decrypt(SecretBox([key]).encrypt("whsec_x")) == "whsec_x"


async def test_reencrypt_moves_every_secret_to_the_new_key(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    created = await client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "event_types": ["*"]}
    )
    assert created.status_code == 201, created.text
    rotated = await client.post(
        f"/v1/webhooks/{created.json()['id']}/rotate-secret", json={"overlap_hours": 1}
    )
    current, previous = rotated.json()["secret"], created.json()["secret"]
    new = new_key()

    moved = await _cli(
        "secrets",
        "reencrypt",
        env=_env(settings, RETENTION_SECRET_KEY=f"{new},{SECRET_KEY}"),
        cwd=tmp_path,
    )
    assert moved.returncode == 0, moved.stderr
    assert "1 webhook endpoints" in moved.stdout
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM webhook_endpoints"))).one()
    only_new = SecretBox([new])
    assert (only_new.decrypt(row.secret), only_new.decrypt(row.previous_secret)) == (
        current,
        previous,
    )

    wrong = await _cli(
        "secrets", "reencrypt", env=_env(settings, RETENTION_SECRET_KEY=new_key()), cwd=tmp_path
    )
    assert wrong.returncode == 1
    assert "nothing changed" in wrong.stderr
    async with engine.connect() as conn:
        after = (await conn.execute(text("SELECT * FROM webhook_endpoints"))).one()
    assert (after.secret, after.previous_secret) == (row.secret, row.previous_secret)


async def test_apikey_create_with_expiry_and_rate_limit(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    env = _env(settings)
    started = datetime.now(UTC)
    result = await _cli(
        "apikey", "create", "--name", "ci", "--scopes", "read",
        "--expires-in-days", "7", "--rate-limit-per-minute", "60",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "expires: " in result.stdout
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT expires_at, rate_limit_per_minute FROM api_keys WHERE name = 'ci'")
            )
        ).one()
    assert row.rate_limit_per_minute == 60
    week = timedelta(days=7)
    assert started + week - timedelta(seconds=1) <= row.expires_at <= datetime.now(UTC) + week

    for option, value in (("--expires-in-days", "0"), ("--rate-limit-per-minute", "-1")):
        refused = await _cli(
            "apikey", "create", "--name", "bad", option, value, env=env, cwd=tmp_path
        )
        assert refused.returncode == 2
        assert option in refused.stderr
    async with engine.connect() as conn:
        count = (
            await conn.execute(text("SELECT count(*) FROM api_keys WHERE name = 'bad'"))
        ).scalar_one()
    assert count == 0


def test_settings_take_several_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = new_key(), new_key()
    monkeypatch.setenv("RETENTION_SECRET_KEY", f"{first},{second}")
    loaded = Settings(_env_file=None)
    assert isinstance(loaded.secret_key, SecretStr)
    assert first not in repr(loaded), "kept out of reprs and logs"

"""`retention run`: the whole service on one machine, stopped cleanly by Ctrl-C or SIGTERM."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import httpx
from rich.console import Console
from rich.markup import escape

from services.core import demo, migrations
from services.core.api_keys import create_api_key, find_active_key
from services.core.config import Settings
from services.core.crypto import SecretBox, key_file, load_box
from services.core.db import create_engine, create_sessionmaker, session_scope
from services.core.embedded import EmbeddedServer, start_postgres, start_redis
from services.core.models.enums import Scope

READY_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
KEY_FILE = "demo-key"


class StartupError(Exception):
    pass


def run(settings: Settings, out: Console, err: Console) -> int:
    """Returns the exit code: 0 after a requested stop, 1 when starting or a child fails."""
    embedded: list[EmbeddedServer] = []
    children: dict[str, subprocess.Popen[bytes]] = {}
    # Set both explicitly: a shell starting a job with `&` makes it inherit SIGINT ignored.
    previous = signal.signal(signal.SIGINT, _interrupt), signal.signal(signal.SIGTERM, _interrupt)
    began = time.monotonic()
    try:
        _check_port_free(settings.host, settings.port)
        settings = _servers(settings, embedded, out)
        box = _secret_box(settings, out)
        out.print("Migrating the database…")
        migrations.upgrade(settings.require_database_url(), secret_box=box)
        loaded, key = asyncio.run(_prepare(settings))
        out.print(
            f"Demo data: {loaded.channels} channels, {loaded.customers} customers, "
            f"{loaded.tickets} tickets, {loaded.interactions} interactions inserted."
        )
        children = _start_children(settings)
        base = f"http://{_connect_host(settings.host)}:{settings.port}"
        _wait_ready(base, children)
        _announce(out, base, key, settings.data_dir / KEY_FILE, time.monotonic() - began)
        return _supervise(children, err)
    except KeyboardInterrupt:
        out.print("Stopping…")
        return 0
    except StartupError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        return 1
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop_children(children)
        for server in reversed(embedded):
            server.stop()
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {host}:{port} ({exc.strerror}); set RETENTION_PORT"
            ) from None


def _servers(settings: Settings, embedded: list[EmbeddedServer], out: Console) -> Settings:
    """The settings with both URLs filled in, starting embedded servers for the unset ones."""
    data_dir = settings.data_dir
    database, redis = settings.database_url, settings.redis_url
    if database:
        out.print(f"PostgreSQL: {escape(_redact(database))} (DATABASE_URL)")
    else:
        out.print(f"PostgreSQL: embedded, data in {escape(str(data_dir / 'postgres'))}")
        embedded.append(_start(start_postgres, data_dir, "PostgreSQL"))
        database = embedded[-1].url
    if redis:
        out.print(f"Redis: {escape(_redact(redis))} (REDIS_URL)")
    else:
        out.print(f"Redis: embedded, data in {escape(str(data_dir / 'redis'))}")
        embedded.append(_start(start_redis, data_dir, "Redis"))
        redis = embedded[-1].url
    return settings.model_copy(update={"database_url": database, "redis_url": redis})


def _start(start: Callable[[Path], EmbeddedServer], data_dir: Path, what: str) -> EmbeddedServer:
    try:
        return start(data_dir)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        raise StartupError(f"could not start the embedded {what}: {exc}") from None


def _secret_box(settings: Settings, out: Console) -> SecretBox:
    """RETENTION_SECRET_KEY, else the key file in the data directory, made on the first run;
    the API and worker started here find the same file."""
    try:
        if settings.secret_key is not None:
            return load_box(settings)
        path = key_file(settings)
        made = not path.exists()
        box = load_box(settings, create=True)
    except (ValueError, OSError) as exc:
        raise StartupError(f"cannot use the secret key: {exc}") from None
    out.print(f"Secret key: {escape(str(path))}{' (made now)' if made else ''}")
    return box


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def _prepare(settings: Settings) -> tuple[demo.DemoResult, str]:
    """Loads the demo data and returns it with an admin key, reusing the one saved before."""
    path = settings.data_dir / KEY_FILE
    saved = path.read_text().strip() if path.exists() else None
    engine = create_engine(settings)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            loaded = await demo.load(session)
            record = await find_active_key(session, saved) if saved else None
            if saved and record is not None and Scope.admin.value in record.scopes:
                return loaded, saved
            key = (await create_api_key(session, "demo", {Scope.admin})).key
    finally:
        await engine.dispose()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    path.chmod(0o600)
    return loaded, key


def _start_children(settings: Settings) -> dict[str, subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.require_database_url(),
        "REDIS_URL": settings.require_redis_url(),
        "RETENTION_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    cli = [sys.executable, "-m", "services.cli"]
    commands = {
        "api": [*cli, "serve", "--host", settings.host, "--port", str(settings.port)],
        "worker": [*cli, "worker"],
    }
    # Own sessions: a Ctrl-C in the terminal reaches only this process, which stops each child
    # exactly once and in order.
    return {
        name: subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        for name, command in commands.items()
    }


def _connect_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _wait_ready(base: str, children: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            _check_alive(children)
            try:
                if client.get(f"{base}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise StartupError(f"the API did not become ready at {base}/readyz in {READY_TIMEOUT:.0f} s")


def _check_alive(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for name, child in children.items():
        if child.poll() is not None:
            raise StartupError(f"the {name} process exited with code {child.returncode}")


def _announce(out: Console, base: str, key: str, key_file: Path, seconds: float) -> None:
    out.print(f"\n[bold green]retention-service is ready[/] in {seconds:.1f} s")
    out.print(f"  API docs: {base}/docs")
    out.print(f"  Demo admin API key (saved in {escape(str(key_file))}):")
    out.print(f"  {key}")
    out.print(
        f'  Try: curl -H "Authorization: Bearer $(cat {escape(str(key_file))})" {base}/v1/customers'
    )
    out.print("Press Ctrl-C to stop.\n")


def _supervise(children: dict[str, subprocess.Popen[bytes]], err: Console) -> int:
    """Waits until a child exits on its own (a failure) or a signal interrupts the wait."""
    while True:
        try:
            _check_alive(children)
        except StartupError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}; stopping everything")
            return 1
        time.sleep(0.5)


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

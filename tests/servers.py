"""Which PostgreSQL and Redis the tests use: TEST_* variables, else the local servers, else
embedded ones started for the run."""

import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def resolve() -> tuple[str, str, list[Callable[[], None]]]:
    """The server URLs (PostgreSQL pointing at its maintenance database) and how to stop
    whatever was started for them."""
    stops: list[Callable[[], None]] = []
    database = os.environ.get("TEST_DATABASE_URL")
    redis = os.environ.get("TEST_REDIS_URL")
    data_dir: Path | None = None
    if database is None:
        if _listening(5432):
            database = LOCAL_POSTGRES
        else:
            from services.core.embedded import start_postgres

            data_dir = Path(tempfile.mkdtemp(prefix="retention-test-"))
            server = start_postgres(data_dir, database="postgres")
            database, stops = server.url, [*stops, server.stop]
    if redis is None:
        if _listening(6379):
            redis = LOCAL_REDIS
        else:
            from services.core.embedded import start_redis

            data_dir = data_dir or Path(tempfile.mkdtemp(prefix="retention-test-"))
            server = start_redis(data_dir)
            redis, stops = server.url, [*stops, server.stop]
    return database, redis, stops

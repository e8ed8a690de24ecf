"""`retention serve --workers 2` and `retention worker` as subprocesses: metrics summed over the
API's processes, the worker's metrics port, and JSON lines from uvicorn and arq."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest

from services.core import metrics
from services.core.config import Settings
from tests.metricsdata import sample

RETENTION = Path(sys.executable).with_name("retention")
START_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(settings: Settings, **overrides: str) -> dict[str, str]:
    assert settings.secret_key is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETENTION_", "PROMETHEUS_"))}
    return {
        **env,
        "DATABASE_URL": settings.require_database_url(),
        "REDIS_URL": settings.require_redis_url(),
        "RETENTION_QUEUE_NAME": settings.queue_name,
        "RETENTION_SECRET_KEY": settings.secret_key.get_secret_value(),
        **overrides,
    }


@contextmanager
def _running(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[Path]:
    """The command running, its stderr going to a file; stopped with SIGTERM at the end."""
    log = cwd / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [str(RETENTION), *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        yield log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for(url: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer:\n{log.read_text()}")


def _json_lines(log: Path) -> list[dict[str, object]]:
    lines = [orjson.loads(line) for line in log.read_text().splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


def test_serve_with_two_workers_sums_their_metrics(settings: Settings, private_dir: Path) -> None:
    port, tmp = _free_port(), private_dir / "tmp"
    tmp.mkdir()
    env = _env(settings, TMPDIR=str(tmp), RETENTION_LOG_LEVEL="info")
    base = f"http://127.0.0.1:{port}"
    requests = 20
    with _running(["serve", "--port", str(port), "--workers", "2"], env, private_dir) as log:
        _wait_for(f"{base}/healthz", log)
        [directory] = tmp.glob("retention-metrics-*")
        for _ in range(requests):  # a connection each, so the kernel spreads them
            with httpx.Client(base_url=base) as http:
                assert http.get("/healthz", headers={"X-Request-ID": "probe"}).status_code == 200
        deadline = time.monotonic() + START_SECONDS
        while len({p.stem.split("_")[-1] for p in directory.glob("*.db")}) < 2:
            assert time.monotonic() < deadline, sorted(directory.iterdir())
            time.sleep(0.2)
        scrapes = []
        for _ in range(4):
            with httpx.Client(base_url=base) as http:
                scrapes.append(http.get("/metrics").text)
    labels = {"method": "GET", "route": "/healthz"}
    counts = [
        sample(text, "retention_http_request_duration_seconds_count", status="200", **labels)
        for text in scrapes
    ]
    # Whichever process answered, it counted the requests every process served.
    assert all(count >= requests for count in counts), counts
    assert not directory.exists()  # the temporary directory goes with the server

    lines = _json_lines(log)
    access = [line for line in lines if line.get("logger") == "retention.access"]
    assert len([line for line in access if line["request_id"] == "probe"]) == requests
    assert any(line.get("logger") == "uvicorn.error" for line in lines)
    assert not any(line.get("logger") == "uvicorn.access" for line in lines)


def test_the_worker_serves_its_metrics_and_logs_json(settings: Settings, private_dir: Path) -> None:
    port = _free_port()
    env = _env(settings, RETENTION_WORKER_METRICS_PORT=str(port))
    url = f"http://127.0.0.1:{port}/metrics"
    with _running(["worker"], env, private_dir) as log:
        _wait_for(url, log)
        text = httpx.get(url).text
    assert "# TYPE retention_scores_computed_total counter" in text
    assert "# TYPE retention_webhook_attempt_duration_seconds histogram" in text
    assert "retention_outbox_relayed_events_total" in text
    lines = _json_lines(log)
    events = [str(line["event"]) for line in lines if line.get("logger") == "arq.worker"]
    assert any(event.startswith("Starting worker") for event in events), events
    assert any(str(line["event"]).startswith("worker metrics at") for line in lines)


def test_a_busy_metrics_port_does_not_stop_the_worker() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert metrics.serve_worker_metrics("127.0.0.1", taken.getsockname()[1]) is None


def test_the_multiprocess_directory_is_emptied_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(metrics.MULTIPROCESS_ENV, raising=False)
    stale, kept = tmp_path / "counter_4242.db", tmp_path / "notes.txt"
    stale.write_bytes(b"\0" * 16)
    kept.write_text("not a metric file")
    with metrics.multiprocess_directory(tmp_path) as directory:
        assert directory == tmp_path
        assert os.environ[metrics.MULTIPROCESS_ENV] == str(tmp_path)
        assert not stale.exists()
        assert kept.exists()
    assert metrics.MULTIPROCESS_ENV not in os.environ
    assert tmp_path.is_dir()  # given, so kept

    with metrics.multiprocess_directory(None) as made:
        assert made.is_dir()
        assert os.environ[metrics.MULTIPROCESS_ENV] == str(made)
    assert not made.exists()
    assert metrics.MULTIPROCESS_ENV not in os.environ

"""Every Prometheus metric the service exports, defined once, with the helpers the instrumented
code calls in one line.

The API serves them at `/metrics`, the worker on its own port (`RETENTION_WORKER_METRICS_PORT`).
`retention serve --workers N` (N > 1) runs the API in prometheus-client's multiprocess mode:
each process writes its samples to files in one directory and a scrape, whichever process
answers it, sums them all (`multiprocess_directory`). Label values are bounded: route
templates, never raw paths; closed vocabularies for the rest."""

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
WEBHOOK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0)

HTTP_REQUEST_SECONDS = Histogram(
    "retention_http_request_duration_seconds",
    "HTTP requests by method, route template and status: time from the request's arrival to "
    "the end of its response. `_count` is the request count.",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
)
OUTBOX_RELAYED = Counter(
    "retention_outbox_relayed_events", "Outbox events handed to the worker queue by the relay."
)
SCORING_LAG_SECONDS = Histogram(
    "retention_scoring_lag_seconds",
    "From an outbox event's commit to the scores of the customers it names stored.",
    buckets=LAG_BUCKETS,
)
SCORES_COMPUTED = Counter(
    "retention_scores_computed",
    "Health scores computed, by subject (customer, channel); a job that runs again counts again.",
    ["subject"],
)
ALERTS_OPENED = Counter(
    "retention_alerts_opened", "Alerts opened by the rules, by subject.", ["subject"]
)
WEBHOOK_ATTEMPTS = Counter(
    "retention_webhook_attempts",
    "Webhook delivery attempts by outcome: delivered (2xx), retry (any other answer or none), "
    "gone (410, the endpoint is disabled), refused (not sent: the URL resolves to a private "
    "address, or the signing secret cannot be read).",
    ["outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "retention_webhook_attempt_duration_seconds",
    "From sending a webhook request until its response headers arrived or it failed.",
    ["outcome"],
    buckets=WEBHOOK_BUCKETS,
)
IMPORT_ROWS = Counter(
    "retention_import_rows",
    "Rows of committed import batches by kind and outcome (imported, duplicate, failed).",
    ["kind", "outcome"],
)
ROW_READ_BATCH = Histogram(
    "retention_api_row_read_batch_size",
    "Rows asked for by id that shared one database query, by table: GETs of one table's rows "
    "arriving in the same turn of the event loop are answered by one `id = ANY(...)` query.",
    ["table"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)

# Gauges read at scrape time by the API (`services/api/ops/metrics.py`), not stored here: they
# describe the database and the queue, not a process.
OUTBOX_BACKLOG = "retention_outbox_backlog_events"
OUTBOX_OLDEST_AGE = "retention_outbox_oldest_event_age_seconds"
QUEUE_JOBS = "retention_queue_jobs"
WEBHOOK_ENDPOINTS_DISABLED = "retention_webhook_endpoints_disabled"


def scoring_lag(created: Iterable[datetime]) -> None:
    """Observe, for each event, the time from its commit until now (its scores are stored)."""
    now = datetime.now(UTC)
    for at in created:
        SCORING_LAG_SECONDS.observe(max((now - at).total_seconds(), 0.0))


def webhook_attempt(outcome: str, latency_ms: float) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    WEBHOOK_ATTEMPT_SECONDS.labels(outcome).observe(latency_ms / 1000)


def import_rows(kind: str, imported: int, duplicates: int, failed: int) -> None:
    for outcome, rows in (("imported", imported), ("duplicate", duplicates), ("failed", failed)):
        if rows:
            IMPORT_ROWS.labels(kind, outcome).inc(rows)


def multiprocess() -> bool:
    """Whether this process's metrics live in the multiprocess directory: decided by
    prometheus-client when it was first imported, from the environment at that moment."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def exposition() -> bytes:
    """This process's metrics in the Prometheus text format; in multiprocess mode, those of
    every process sharing the directory, summed."""
    if not multiprocess():
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


@contextmanager
def multiprocess_directory(path: Path | None) -> Iterator[Path]:
    """Set up prometheus-client's multiprocess mode for the processes started inside: `path`
    (or a new temporary directory, removed at the end) is emptied of metric files from an
    earlier run, which would otherwise add their counts to this one, and named in the
    environment the processes inherit. Give every server a directory of its own."""
    created = path is None
    directory = Path(tempfile.mkdtemp(prefix="retention-metrics-")) if path is None else path
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    previous = os.environ.get(MULTIPROCESS_ENV)
    os.environ[MULTIPROCESS_ENV] = str(directory)
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_ENV, None)
        else:
            os.environ[MULTIPROCESS_ENV] = previous
        if created:
            shutil.rmtree(directory, ignore_errors=True)


def serve_worker_metrics(host: str, port: int) -> WSGIServer | None:
    """The worker's metrics over HTTP on a thread of its own (port 0: any free port). None when
    the port cannot be had: the worker runs on without serving them, and says so."""
    try:
        server, _ = start_http_server(port, host)
    except OSError as exc:
        log.warning(
            "worker metrics are not served: cannot listen on %s:%d (%s)",
            host,
            port,
            exc.strerror or exc,
            extra={"host": host, "port": port},
        )
        return None
    log.info(
        "worker metrics at http://%s:%d/metrics",
        host,
        server.server_port,
        extra={"host": host, "port": server.server_port},
    )
    return server

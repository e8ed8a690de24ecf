"""Scale-out on one PostgreSQL: two API processes and two scorer workers against one of each.

(a) Ingest: interactions/s through `POST /v1/interactions/batch` (`--batch` rows a request,
    `--clients` concurrent kept-alive clients, `--rows` rows) with `retention serve --workers 1`,
    then `--workers 2`, each on a fresh scratch database seeded alike (1,000 customers).
(b) Scoring: a burst of `--customers` x `--rounds` interactions (each customer gets `--rounds`:
    orders and visits that occurred a minute ago), `--per-request` a request, written through the
    API (`retention serve --workers 2`, `--clients` clients) while no worker runs, so its events
    wait in the outbox as after a worker outage. The bench holds them back (marks them relayed)
    while one, or two, `retention worker` processes start, then hands them back in one commit
    with the NOTIFY a write sends, and times from that commit until every customer's stored
    score counts all of its burst (`orders_90d + engagement_90d` up by `--rounds` from the score
    the recompute stored before the burst; PostgreSQL polled every 50 ms): relay, queue, jobs
    and scoring, without the workers' start-up. The relays hand the backlog to arq in jobs of up
    to 500 events, which the workers share. Each run seeds a fresh scratch database with
    `--customers` customers in 50 channels with 10 past interactions each, scored once through
    `POST /v1/scoring/recompute` by one worker stopped before the burst.

Where the next bottleneck is: during each timed phase, CPU seconds are read for the API
processes, the worker processes, this script and the database's PostgreSQL backends (psutil),
and PostgreSQL's `pg_stat_activity` is sampled every 100 ms for the database's client
backends: the average number on CPU (active, no wait event), waiting on a lock (`Lock:object`
is the NOTIFY queue lock every committing write takes), on WAL or I/O, or waiting for the client
(`idle in transaction`: the application is working between statements).

Runs `--repeat` rounds, alternating the order (1, 2, then 2, 1, ...), and reports medians.
Machine-wide noise (other processes on the same cores) moves every figure: compare the ratios.

Usage: python -m bench.scale [--rows 100000] [--customers 5000] [--rounds 4] [--repeat 1]
       [--only ingest|scoring]
"""

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import asyncpg
import httpx
import orjson
import psutil
from sqlalchemy import make_url

from bench.harness import PROCESS_ENV, ROOT, admin_key, free_port, scratch_database
from bench.ingest import batch_bodies, make_rows, seed_customers
from bench.latency import SCORES, prescore, seed
from services.core.config import Settings
from services.core.db import asyncpg_dsn
from services.core.events import OUTBOX_CHANNEL

API_WORKERS_FOR_SCORING = 2
CHANNELS = 50
HISTORY = 10
POLL_SECONDS = 0.05
SAMPLE_SECONDS = 0.1
SCORE_TIMEOUT_SECONDS = 600.0
WARMUP_BATCHES = 4

ACTIVITY = """
SELECT pid, state, wait_event_type, wait_event, query FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
  AND pid <> pg_backend_pid()
"""


@dataclass
class Profile:
    """Where time went during one timed phase."""

    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    sessions: Counter[str] = field(default_factory=Counter)
    waiting: Counter[str] = field(default_factory=Counter)
    samples: int = 0

    def average_sessions(self) -> list[tuple[str, float]]:
        n = max(self.samples, 1)
        return [(what, count / n) for what, count in self.sessions.most_common()]


def statement(query: str) -> str:
    """A waiting statement in short: its start and the first table it writes."""
    words = " ".join(query.split())
    written = re.search(r"\b(?:INSERT INTO|UPDATE)\s+(\w+)", words, re.IGNORECASE)
    # pg_stat_activity keeps the first kB of a statement (track_activity_query_size)
    return f"{words[:50]}... (writes {written[1] if written else '? (past the first kB)'})"


def session_state(row: asyncpg.Record) -> str | None:
    state, kind, event = row["state"], row["wait_event_type"], row["wait_event"]
    if state == "active":
        return "cpu" if kind is None else f"{kind}:{event}"
    if state and state.startswith("idle in transaction"):
        return "client (idle in transaction)"
    return None  # idle: a pooled connection nobody is using


class Watch:
    """CPU seconds per component and PostgreSQL session samples while a phase runs."""

    def __init__(self, dsn: str, processes: dict[str, list[psutil.Process]]) -> None:
        self.dsn = dsn
        self.processes = processes
        self.profile = Profile()
        self._cpu: dict[str, float] = {}
        self._backends: dict[int, float] = {}
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0

    @staticmethod
    def _own_cpu() -> float:
        """This process alone: the API and workers are its children."""
        times = psutil.Process().cpu_times()
        return float(times.user + times.system)

    @staticmethod
    def _tree_cpu(roots: list[psutil.Process]) -> float:
        total = 0.0
        for root in roots:
            for proc in [root, *root.children(recursive=True)]:
                try:
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += times.user + times.system
        return total

    async def _backend_cpu(self) -> dict[int, float]:
        assert self._conn is not None
        cpu = {}
        for row in await self._conn.fetch(ACTIVITY):
            try:
                times = psutil.Process(row["pid"]).cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            cpu[row["pid"]] = times.user + times.system
        return cpu

    async def _sample(self) -> None:
        assert self._conn is not None
        while True:
            rows = await self._conn.fetch(ACTIVITY)
            self.profile.samples += 1
            for row in rows:
                if (state := session_state(row)) is not None:
                    self.profile.sessions[state] += 1
                if row["wait_event_type"] == "Lock":
                    self.profile.waiting[statement(row["query"])] += 1
            await asyncio.sleep(SAMPLE_SECONDS)

    async def __aenter__(self) -> "Watch":
        self._conn = await asyncpg.connect(self.dsn)
        self._cpu = {name: self._tree_cpu(procs) for name, procs in self.processes.items()}
        self._client = self._own_cpu()
        self._backends = await self._backend_cpu()
        self._started = time.perf_counter()
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        assert self._conn is not None
        self.profile.seconds = time.perf_counter() - self._started
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        for name, procs in self.processes.items():
            self.profile.cpu[name] = self._tree_cpu(procs) - self._cpu[name]
        self.profile.cpu["bench client"] = self._own_cpu() - self._client
        backends = await self._backend_cpu()
        self.profile.cpu["postgres backends"] = sum(
            cpu - self._backends.get(pid, 0.0) for pid, cpu in backends.items()
        )
        await self._conn.close()


@contextmanager
def serve(settings: Settings, workers: int, log: IO[bytes]) -> Iterator[tuple[str, psutil.Process]]:
    """`retention serve --workers N` on a free port, as deployed; its URL once it answers."""
    port = free_port()
    env = {
        **os.environ,
        **PROCESS_ENV,
        "DATABASE_URL": settings.require_database_url(),
        "REDIS_URL": settings.require_redis_url(),
        "RETENTION_QUEUE_NAME": settings.queue_name,
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "services.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`retention serve` did not start; log: {log.name}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        # every process answers before timing starts: each needs its own connections
        yield base, psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


async def wait_listening(dsn: str, workers: int) -> float:
    """Each worker LISTENs twice (outbox relay, webhook dispatcher) once it has started; the
    shared health-check key cannot tell one started worker from two."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 60
        while True:
            listening = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'LISTEN %'"
            )
            if listening >= 2 * workers:
                return time.perf_counter()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{listening} of {2 * workers} LISTEN connections")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def post_all(base: str, key: str, bodies: list[bytes], clients: int) -> list[float]:
    """POST every body to the batch endpoint from `clients` kept-alive clients; each 2xx's time."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    done: list[float] = []

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            response = await http.post("/v1/interactions/batch", content=body)
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.text[:500]}")
            result = response.json()
            if result["created"] != len(result["results"]):
                raise RuntimeError(f"batch not fully created: {result['errors']} errors")
            done.append(time.perf_counter())

    async with AsyncExitStack() as stack:
        limits = httpx.Limits(max_connections=1)
        https = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=limits)
            )
            for _ in range(clients)
        ]
        await asyncio.gather(*(client(http) for http in https))
    return done


# --- (a) ingest ----------------------------------------------------------------------------


@dataclass
class IngestRun:
    api_workers: int
    rows: int
    seconds: float
    profile: Profile

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def ingest_run(args: argparse.Namespace, api_workers: int, log: IO[bytes]) -> IngestRun:
    with scratch_database() as settings:
        dsn = asyncpg_dsn(settings.require_database_url())
        key = asyncio.run(admin_key(settings))
        customers = asyncio.run(seed_customers(settings, 1_000))
        rows = make_rows(customers, args.rows + WARMUP_BATCHES * args.batch)
        bodies = batch_bodies(rows, args.batch)
        warmup, timed = bodies[:WARMUP_BATCHES], bodies[WARMUP_BATCHES:]
        with serve(settings, api_workers, log) as (base, api):

            async def phase() -> Profile:
                await post_all(base, key, warmup, min(args.clients, WARMUP_BATCHES))
                async with Watch(dsn, {"api": [api]}) as watch:
                    await post_all(base, key, timed, args.clients)
                return watch.profile

            profile = asyncio.run(phase())
    return IngestRun(api_workers, args.rows, profile.seconds, profile)


# --- (b) scoring ---------------------------------------------------------------------------


@dataclass
class ScoringRun:
    scorers: int
    interactions: int
    customers: int
    events: int
    written: float
    ready: float
    seconds: float
    profile: Profile

    @property
    def rate(self) -> float:
        return self.interactions / self.seconds


def burst_bodies(customers: list[str], rounds: int, per_request: int) -> list[bytes]:
    """Every customer `rounds` times, orders and visits that occurred a minute ago."""
    when = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    items: list[dict[str, Any]] = []
    for round_ in range(rounds):
        for n, customer in enumerate(customers):
            item: dict[str, Any] = {
                "customer_id": customer,
                "kind": "visit",
                "occurred_at": when,
                "external_id": f"scale-{round_}-{n}",
            }
            if (round_ + n) % 2 == 0:
                item |= {"kind": "order", "amount": f"{100 + n % 900}.00"}
            items.append(item)
    return [
        orjson.dumps({"items": items[o : o + per_request]})
        for o in range(0, len(items), per_request)
    ]


@contextmanager
def workers(settings: Settings, count: int, log: IO[bytes]) -> Iterator[list[psutil.Process]]:
    """`count` `retention worker` processes launched at once; SIGTERM at the end."""
    env = {
        **os.environ,
        **PROCESS_ENV,
        "DATABASE_URL": settings.require_database_url(),
        "REDIS_URL": settings.require_redis_url(),
        "RETENTION_QUEUE_NAME": settings.queue_name,
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "services.cli", "worker"]
    started = [
        subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log) for _ in range(count)
    ]
    try:
        yield [psutil.Process(p.pid) for p in started]
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def until_scored(dsn: str, base_counts: dict[str, float], rounds: int) -> float:
    """perf_counter() when every customer's stored score counts its whole burst."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.perf_counter() + SCORE_TIMEOUT_SECONDS
        while True:
            rows = await conn.fetch(SCORES)
            seen = time.perf_counter()
            done = sum(
                1
                for r in rows
                if r["customer_id"] in base_counts
                and r["recent"] - base_counts[r["customer_id"]] >= rounds
            )
            if done == len(base_counts):
                return seen
            if seen > deadline:
                raise RuntimeError(f"only {done} of {len(base_counts)} customers scored")
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await conn.close()


async def hold_outbox(dsn: str) -> list[int]:
    """Mark the waiting events relayed, so that workers start with nothing to do."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "UPDATE outbox_events SET relayed_at = now() WHERE relayed_at IS NULL RETURNING id"
        )
        return [r["id"] for r in rows]
    finally:
        await conn.close()


async def release_outbox(dsn: str, ids: list[int]) -> float:
    """Hand the held events back to the relays at once, as a commit wakes them; the time."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                "UPDATE outbox_events SET relayed_at = NULL WHERE id = ANY($1::bigint[])", ids
            )
            await conn.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
        return time.perf_counter()
    finally:
        await conn.close()


async def read_base_counts(dsn: str) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    try:
        return {r["customer_id"]: r["recent"] for r in await conn.fetch(SCORES)}
    finally:
        await conn.close()


def scoring_run(args: argparse.Namespace, scorers: int, log: IO[bytes]) -> ScoringRun:
    """Seed and score once; write the burst with no worker running, so every event waits in
    the outbox; hold the events back while the workers start, then release them at once and
    time until every score is stored."""
    with scratch_database() as settings:
        dsn = asyncpg_dsn(settings.require_database_url())
        customers = asyncio.run(seed(settings, args.customers, CHANNELS, HISTORY))
        key = asyncio.run(admin_key(settings))
        bodies = burst_bodies(customers, args.rounds, args.per_request)
        with serve(settings, API_WORKERS_FOR_SCORING, log) as (base, _):
            with workers(settings, 1, log):
                asyncio.run(wait_listening(dsn, 1))
                asyncio.run(prescore(base, key))
            base_counts = asyncio.run(read_base_counts(dsn))
            if len(base_counts) != len(customers):
                raise RuntimeError(f"prescore scored {len(base_counts)} of {len(customers)}")

            started = time.perf_counter()
            answered = asyncio.run(post_all(base, key, bodies, args.clients))
            written = max(answered) - started
            held = asyncio.run(hold_outbox(dsn))
            if len(held) != len(bodies):
                raise RuntimeError(f"{len(held)} events waited in the outbox, not {len(bodies)}")

            launched = time.perf_counter()
            with workers(settings, scorers, log) as processes:
                ready = asyncio.run(wait_listening(dsn, scorers)) - launched

                async def phase() -> tuple[float, Profile]:
                    async with Watch(dsn, {"workers": processes}) as watch:
                        released = await release_outbox(dsn, held)
                        scored = await until_scored(dsn, base_counts, args.rounds)
                    return scored - released, watch.profile

                seconds, profile = asyncio.run(phase())
    interactions = len(customers) * args.rounds
    return ScoringRun(
        scorers, interactions, len(customers), len(bodies), written, ready, seconds, profile
    )


# --- report --------------------------------------------------------------------------------


def profile_line(profile: Profile) -> str:
    cores = ", ".join(
        f"{name} {cpu / profile.seconds:.2f}" for name, cpu in sorted(profile.cpu.items())
    )
    sessions = ", ".join(f"{what} {n:.2f}" for what, n in profile.average_sessions()[:5])
    lines = [
        f"      cores busy: {cores}",
        f"      PostgreSQL sessions (average): {sessions or 'none'}",
    ]
    for query, count in profile.waiting.most_common(2):
        lines.append(f"      waiting on a lock ({count / max(profile.samples, 1):.2f}): {query}")
    return "\n".join(lines)


def median_by(runs: list[Any], key: str) -> dict[int, Any]:
    """The run with the median rate for each setting of `key`."""
    chosen = {}
    for value in sorted({getattr(r, key) for r in runs}):
        same = sorted((r for r in runs if getattr(r, key) == value), key=lambda r: r.rate)
        chosen[value] = same[(len(same) - 1) // 2]
    return chosen


def report_ingest(runs: list[IngestRun], args: argparse.Namespace) -> None:
    print(
        f"(a) ingest: POST /v1/interactions/batch, {args.batch:,} rows a request, "
        f"{args.clients} clients, {args.rows:,} rows a run, {args.repeat} run(s) each"
    )
    chosen = median_by(runs, "api_workers")
    baseline = chosen[1].rate
    for workers, run in chosen.items():
        rates = ", ".join(f"{r.rate:,.0f}" for r in runs if r.api_workers == workers)
        print(
            f"  {workers} API process{'es' if workers > 1 else '  '}  {run.rate:>9,.0f} rows/s  "
            f"x{run.rate / baseline:.2f}   (runs: {rates})"
        )
        print(profile_line(run.profile))


def report_scoring(runs: list[ScoringRun], args: argparse.Namespace) -> None:
    first = runs[0]
    print(
        f"(b) scoring: {first.interactions:,} interactions ({args.rounds} for each of "
        f"{first.customers:,} customers) in {first.events:,} requests of {args.per_request}, "
        f"written through the API ({API_WORKERS_FOR_SCORING} processes) with no worker running, "
        f"then scored; {args.repeat} run(s) each"
    )
    chosen = median_by(runs, "scorers")
    baseline = chosen[1].rate
    for scorers, run in chosen.items():
        rates = ", ".join(f"{r.rate:,.0f}" for r in runs if r.scorers == scorers)
        print(
            f"  {scorers} worker{'s' if scorers > 1 else ' '}  {run.rate:>9,.0f} interactions "
            f"scored/s  x{run.rate / baseline:.2f}   every score stored {run.seconds:.2f} s after "
            f"the release (workers started in {run.ready:.2f} s)   (runs: {rates})"
        )
        print(
            f"      the burst took {run.written:.2f} s to write: "
            f"{run.interactions / run.written:,.0f} interactions/s through the API"
        )
        print(profile_line(run.profile))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="ingest rows per run")
    parser.add_argument("--batch", type=int, default=1_000, help="ingest rows per request")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--customers", type=int, default=10_000, help="scoring: customers")
    parser.add_argument("--rounds", type=int, default=4, help="scoring: interactions each")
    parser.add_argument("--per-request", type=int, default=10, help="scoring: per request")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each setting")
    parser.add_argument("--only", choices=["ingest", "scoring"])
    args = parser.parse_args()

    # every process this bench starts, the API and workers included, reads these
    os.environ.update(PROCESS_ENV)
    server = make_url(os.environ.get("BENCH_DATABASE_URL", "postgresql://127.0.0.1"))
    print(
        f"cores: {psutil.cpu_count()}  load average: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}  PostgreSQL: {server.host}"
    )
    log = tempfile.NamedTemporaryFile(prefix="scale-", suffix=".log", delete=False)
    with log:
        orders = [(1, 2) if n % 2 == 0 else (2, 1) for n in range(args.repeat)]
        if args.only != "scoring":
            ingest = [ingest_run(args, n, log) for order in orders for n in order]
            report_ingest(ingest, args)
        if args.only != "ingest":
            scoring = [scoring_run(args, n, log) for order in orders for n in order]
            report_scoring(scoring, args)
    print(f"process log: {log.name}")


if __name__ == "__main__":
    main()

"""Event-to-score latency: interactions posted at a steady rate, each timed until its score shows.

Setup: a scratch database seeded by COPY with `--customers` customers spread over `--channels`
channels (open memberships), each with `--history` past interactions, all scored once through
`POST /v1/scoring/recompute`; the API (uvicorn, 2 workers) and ONE `retention worker` process,
started as deployed and stopped with SIGTERM at the end.

Load: `POST /v1/interactions/batch` requests of `--batch` interactions (default 10, so 50
requests/s at 500/s; `--batch 1` sends single `POST /v1/interactions`), started on a fixed
schedule for `--seconds` over 32 kept-alive connections. An interaction counts as sent at its
scheduled time, so a request waiting for a connection is charged, not hidden. Customers are
taken round-robin from a shuffled list: each comes back every customers/rate s (10 s by default).
Every interaction is an order or a visit that occurred at its send time.

Measure: the 2xx time is when the response has arrived. A score reflects a customer's n-th
interaction of the run once the `orders_90d + engagement_90d` features stored with it are n above
their value before the run (the seeded history keeps clear of the 90-day edge, so only new
interactions move them). A poller asks PostgreSQL directly every 20 ms, for the customers with an
interaction still pending only (`customer_id = ANY(...)`, primary-key lookups), so measuring costs
one small query per poll rather than an API call per interaction. Latency = arrival of the first
poll whose row reflects the interaction - its 2xx time: an upper bound, coarse by one poll interval
(printed) plus one query; negative when the score was visible before the client got its 2xx. All
times are wall-clock times of this one machine (API, worker, PostgreSQL and this script share the
clock: no skew). The last scored customers are read back through `GET /v1/customers/{id}/health`
to check the API serves scores that include their interaction.

Where the time goes, as offsets from each 2xx: `relayed` = the outbox row's `relayed_at` (the
relay's claim; negative when it beat the response to the client), `scoring` = `computed_at` of
the row that matched (`now()` of the transaction that wrote it, i.e. when that write began),
`visible` as above. Same-run baselines: a PostgreSQL round trip, the POST's own latency, and the
floors the two ways of waking set: through NOTIFY only arq's queue poll is waited for (uniform
over its `poll_delay`); a relay relying on its own poll would add a wait uniform over
`poll_seconds`. Target: p99 <= 1 s.

Usage: python -m bench.latency [--rate 500] [--seconds 60] [--customers 5000] [--batch 10]
"""

import argparse
import asyncio
import inspect
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import asyncpg
import httpx
import numpy as np
import orjson
from arq.worker import Worker
from redis.asyncio import Redis
from uuid_utils.compat import uuid7

from bench.harness import PROCESS_ENV, ROOT, admin_key, scratch_database, uvicorn
from services.core.config import Settings
from services.core.db import asyncpg_dsn
from services.scorer.relay import relay_forever
from services.scorer.worker import JOB_COMPLETION_WAIT_SECONDS, worker_options

TARGET_P99 = 1.0
POLL_SECONDS = 0.02
DRAIN_SECONDS = 30.0
API_WORKERS = 2
CONNECTIONS = 32
SPOT_CHECKS = 20

# The bench posts orders and visits: the interactions these two 90-day features count.
SCORES = """
SELECT customer_id::text AS customer_id, computed_at,
  (features->>'orders_90d')::float8 + (features->>'engagement_90d')::float8 AS recent
FROM customer_health
"""
WATCH = SCORES + "WHERE customer_id = ANY($1::uuid[])"


@dataclass
class Posted:
    customer: str
    sent: float = math.nan
    ok: float = math.nan
    nth: int = 0
    interaction: str = ""
    visible: float = math.nan
    computed: float = math.nan
    relayed: float = math.nan


async def seed(settings: Settings, customers: int, channels: int, history: int) -> list[str]:
    """Channels, customers in them, open memberships and past interactions, all by COPY."""
    rng = random.Random(3)
    now = datetime.now(UTC)
    conn = await asyncpg.connect(asyncpg_dsn(settings.require_database_url()))
    channel_ids = [uuid7() for _ in range(channels)]
    await conn.copy_records_to_table(
        "channels",
        records=[(c, f"Channel {n}", "agent") for n, c in enumerate(channel_ids)],
        columns=["id", "name", "type"],
    )
    ids = [uuid7() for _ in range(customers)]
    home = [channel_ids[n % channels] if channels else None for n in range(customers)]
    joined = now - timedelta(days=800)
    await conn.copy_records_to_table(
        "customers",
        records=[
            (i, f"LAT-{n}", f"Customer {n}", h, joined)
            for n, (i, h) in enumerate(zip(ids, home, strict=True))
        ],
        columns=["id", "external_ref", "name", "channel_id", "created_at"],
    )
    await conn.copy_records_to_table(
        "customer_channel_memberships",
        records=[(i, h, joined) for i, h in zip(ids, home, strict=True) if h is not None],
        columns=["customer_id", "channel_id", "started_at"],
    )
    past = []
    for i, h in zip(ids, home, strict=True):
        for _ in range(history):
            is_order = rng.random() < 0.5
            # none within 5 days of the 90-day edge, so 90-day counts move only with new events
            days = rng.uniform(1, 390)
            amount = round(rng.uniform(10, 2_000), 2) if is_order else None
            past.append(
                (
                    uuid7(),
                    i,
                    h,
                    "order" if is_order else "visit",
                    now - timedelta(days=days if days < 85 else days + 10),
                    amount,
                    "CNY" if is_order else None,
                )
            )
    await conn.copy_records_to_table(
        "interactions",
        records=past,
        columns=["id", "customer_id", "channel_id", "kind", "occurred_at", "amount", "currency"],
    )
    await conn.execute("ANALYZE")
    await conn.close()
    return [str(i) for i in ids]


@contextmanager
def scorer(
    settings: Settings, log: IO[bytes], extra_env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """One `retention worker` process on the bench's own queue; stopped with SIGTERM."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.require_database_url(),
        "REDIS_URL": settings.require_redis_url(),
        "RETENTION_QUEUE_NAME": settings.queue_name,
        "PYTHONPATH": str(ROOT),
        **PROCESS_ENV,
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "services.cli", "worker"]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
    try:
        asyncio.run(_wait_healthy(settings, process))
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            # Running jobs get their grace, then are cancelled, which takes a moment more.
            process.wait(timeout=JOB_COMPLETION_WAIT_SECONDS + 30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(f"the worker ignored SIGTERM; log: {log.name}") from None


async def _wait_healthy(settings: Settings, process: subprocess.Popen[bytes]) -> None:
    redis = Redis.from_url(settings.require_redis_url())
    try:
        deadline = time.monotonic() + 30
        while not await redis.exists(settings.worker_health_key):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker did not start")
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()


async def prescore(base: str, key: str) -> float:
    """Score everyone once through `POST /v1/scoring/recompute`; the job's seconds."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        response = await http.post("/v1/scoring/recompute", json={})
        response.raise_for_status()
        job_url = f"/v1/jobs/{response.json()['id']}"
        while True:
            job = (await http.get(job_url)).json()
            if job["status"] == "succeeded":
                started = datetime.fromisoformat(job["started_at"])
                return (datetime.fromisoformat(job["finished_at"]) - started).total_seconds()
            if job["status"] == "failed":
                raise RuntimeError(f"recompute failed: {job['errors']}")
            await asyncio.sleep(0.2)


class Run:
    """The posting schedule, the poller and what they recorded."""

    def __init__(
        self, base: str, key: str, dsn: str, customers: list[str], total: int, batch: int
    ) -> None:
        self.base, self.key, self.dsn, self.batch = base, key, dsn, batch
        order = random.Random(5).sample(customers, len(customers))
        self.posted = [Posted(order[n % len(order)]) for n in range(total)]
        self.base_counts: dict[str, float] = {}
        self.stored: dict[str, int] = {}
        self.pending: dict[str, list[Posted]] = {}
        self.clients: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        self.lag = 0.0
        self.polls = 0
        self.watched = 0.0

    def body(self, first: int, items: list[Posted]) -> dict[str, Any]:
        bodies = []
        for n, item in enumerate(items, start=first):
            body: dict[str, Any] = {
                "customer_id": item.customer,
                "kind": "visit",
                "occurred_at": datetime.fromtimestamp(item.sent, UTC).isoformat(),
                "external_id": f"latency-{n}",
            }
            if n % 3 == 0:
                body |= {"kind": "order", "amount": f"{100 + n % 900}.00"}
            bodies.append(body)
        return bodies[0] if self.batch == 1 else {"items": bodies}

    async def post(self, first: int, due: float) -> None:
        """Send one request; its items count as sent at their scheduled time, so waiting
        for a free connection counts against the API rather than vanishing."""
        items = self.posted[first : first + self.batch]
        for item in items:
            item.sent = due
        path = "/v1/interactions" if self.batch == 1 else "/v1/interactions/batch"
        content = orjson.dumps(self.body(first, items))
        # The request's outbox event carries this id: how relay_times finds its items.
        headers = {"X-Request-ID": f"latency-{first}"}
        http = await self.clients.get()
        try:
            response = await http.post(path, content=content, headers=headers)
        except httpx.TransportError:
            # a kept-alive connection closed under us; external ids make a resend safe
            response = await http.post(path, content=content, headers=headers)
        finally:
            self.clients.put_nowait(http)
        ok = time.time()
        stored: list[str | None] = [None] * len(items)
        if self.batch == 1 and response.status_code in (200, 201):
            stored = [response.json()["id"]]
        elif self.batch > 1 and response.status_code == 200:
            stored = [r["id"] for r in response.json()["results"]]
        for item, interaction in zip(items, stored, strict=True):
            item.ok = ok
            if interaction is None:
                continue
            item.interaction = interaction
            # a customer comes back every customers/rate seconds: its stores arrive in order
            item.nth = self.stored[item.customer] = self.stored.get(item.customer, 0) + 1
            self.pending.setdefault(item.customer, []).append(item)

    async def send_all(self, rate: float) -> None:
        # A client per connection: httpx's pool scans every connection on each event, which
        # costs this process more CPU than the requests themselves once it holds dozens.
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=1)
        async with AsyncExitStack() as stack:
            for _ in range(CONNECTIONS):
                client = httpx.AsyncClient(
                    base_url=self.base, headers=headers, timeout=60, limits=limits
                )
                self.clients.put_nowait(await stack.enter_async_context(client))
            loop = asyncio.get_running_loop()
            start, wall = loop.time(), time.time()
            tasks = []
            for first in range(0, len(self.posted), self.batch):
                due = start + first / rate
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                self.lag = max(self.lag, loop.time() - due)
                tasks.append(asyncio.create_task(self.post(first, wall + first / rate)))
            await asyncio.gather(*tasks)

    async def watch(self, sending: asyncio.Task[None]) -> None:
        """Poll PostgreSQL for the pending customers' scores until none is left (or timeout)."""
        conn = await asyncpg.connect(self.dsn)
        give_up, started = math.inf, time.time()
        try:
            while time.time() < give_up:
                if sending.done() and give_up == math.inf:
                    give_up = time.time() + DRAIN_SECONDS
                    if not self.pending:
                        break
                tick = time.time()
                if self.pending:
                    await self.poll(conn)
                await asyncio.sleep(max(0.0, tick + POLL_SECONDS - time.time()))
        finally:
            self.watched = time.time() - started
            await conn.close()

    async def read_base_counts(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        rows = await conn.fetch(SCORES)
        await conn.close()
        self.base_counts = {r["customer_id"]: r["recent"] for r in rows}

    async def poll(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(WATCH, list(self.pending))
        seen = time.time()
        self.polls += 1
        for row in rows:
            customer = row["customer_id"]
            included = row["recent"] - self.base_counts.get(customer, 0.0)
            waiting = self.pending[customer]
            for item in [p for p in waiting if p.nth <= included]:
                item.visible, item.computed = seen, row["computed_at"].timestamp()
                waiting.remove(item)
            if not waiting:
                del self.pending[customer]

    async def run(self, rate: float) -> None:
        await self.read_base_counts()
        sending = asyncio.create_task(self.send_all(rate))
        await asyncio.gather(sending, self.watch(sending))

    async def relay_times(self) -> int:
        """Fill in each interaction's `relayed_at`, found through its request's id; the number
        of relay batches (= jobs)."""
        conn = await asyncpg.connect(self.dsn)
        rows = await conn.fetch(
            "SELECT e.payload->>'request_id' AS request, e.relayed_at FROM outbox_events e "
            "WHERE e.type = $1 AND e.relayed_at IS NOT NULL",
            "interactions.created",
        )
        await conn.close()
        relayed = {r["request"]: r["relayed_at"] for r in rows}
        for first in range(0, len(self.posted), self.batch):
            if (at := relayed.get(f"latency-{first}")) is not None:
                for item in self.posted[first : first + self.batch]:
                    if item.interaction:
                        item.relayed = at.timestamp()
        return len(set(relayed.values()))

    async def spot_check(self) -> tuple[int, int]:
        """Scored interactions that `GET /v1/customers/{id}/health` shows included."""
        sample = [p for p in self.posted if not math.isnan(p.visible)][-SPOT_CHECKS:]
        headers = {"Authorization": f"Bearer {self.key}"}
        agree = 0
        async with httpx.AsyncClient(base_url=self.base, headers=headers) as http:
            for item in sample:
                response = await http.get(f"/v1/customers/{item.customer}/health")
                if response.status_code == 200:
                    features = response.json()["features"]
                    recent = features["orders_90d"] + features["engagement_90d"]
                    agree += recent - self.base_counts[item.customer] >= item.nth
        return agree, len(sample)


async def db_round_trip(dsn: str, count: int = 200) -> np.ndarray:
    conn = await asyncpg.connect(dsn)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await conn.fetchval("SELECT 1")
        times.append(time.perf_counter() - started)
    await conn.close()
    return np.array(times)


def waits(settings: Settings) -> tuple[float, float]:
    """arq's queue poll delay as the worker sets it, and the relay's fallback poll."""
    default = inspect.signature(Worker).parameters["poll_delay"].default
    arq_poll = float(worker_options(settings).get("poll_delay", default))
    relay_poll = float(inspect.signature(relay_forever).parameters["poll_seconds"].default)
    return arq_poll, relay_poll


def uniform_sum_quantile(a: float, b: float, q: float) -> float:
    """Quantile q >= 0.5 of U(0, a) + U(0, b): a flat middle, a triangular top tail."""
    low, high = min(a, b), max(a, b)
    tail = math.sqrt(2 * (1 - q) * low * high)
    return low + high - tail if tail <= low else high + low / 2 - (1 - q) * high


def line(label: str, seconds: np.ndarray, note: str = "") -> str:
    if seconds.size == 0:
        return f"{label:<26} (none)"
    p50, p90, p99 = np.percentile(seconds, [50, 90, 99]) * 1000
    worst = seconds.max() * 1000
    return f"{label:<26} p50 {p50:7.1f}  p90 {p90:7.1f}  p99 {p99:7.1f}  max {worst:7.1f} ms{note}"


def report(
    run: Run,
    args: argparse.Namespace,
    jobs: int,
    checked: tuple[int, int],
    round_trips: np.ndarray,
    settings: Settings,
) -> None:
    posted = run.posted
    stored = [p for p in posted if p.nth]
    scored = [p for p in stored if not math.isnan(p.visible)]
    span = max(p.ok for p in posted) - min(p.sent for p in posted)
    visible = np.array([p.visible - p.ok for p in scored])
    p99 = float(np.percentile(visible, 99)) if visible.size else math.inf
    relayed = np.array([p.relayed - p.ok for p in scored if not math.isnan(p.relayed)])
    arq_poll, relay_poll = waits(settings)
    endpoint = "POST /v1/interactions" if args.batch == 1 else "POST /v1/interactions/batch"

    print(
        f"customers: {args.customers:,}  channels: {args.channels}  "
        f"history: {args.history}/customer  api workers: {API_WORKERS}  scorer workers: 1"
    )
    print(
        f"posted: {len(posted):,} interactions, {args.batch} per {endpoint} request, "
        f"target {args.rate:g}/s: achieved {len(posted) / span:,.1f}/s "
        f"(max schedule lag {run.lag * 1000:.1f} ms); not stored: {len(posted) - len(stored)}"
    )
    print(
        f"scored: {len(scored):,} of {len(stored):,} (unseen {DRAIN_SECONDS:g} s after the "
        f"last post: {len(stored) - len(scored)})  relay batches (= jobs): {jobs:,}, "
        f"{len(stored) / max(jobs, 1):.1f} interactions/job  "
        f"polls: {run.polls:,}, one per {run.watched / max(run.polls, 1) * 1000:.0f} ms"
    )
    print("from the 2xx to ...")
    print(line("  relayed (relayed_at)", relayed))
    print(line("  scoring (computed_at)", np.array([p.computed - p.ok for p in scored])))
    verdict = "PASS" if p99 <= TARGET_P99 and len(scored) == len(stored) else "FAIL"
    note = f"   target p99 <= {TARGET_P99 * 1000:.0f} ms: {verdict}"
    print(line("  visible (poll)", visible, note))
    print("same-run baselines")
    print(line("  PostgreSQL SELECT 1", round_trips))
    print(line("  POST send -> 2xx", np.array([p.ok - p.sent for p in posted])))
    print(
        f"  waiting floor, NOTIFY path: arq poll U(0, {arq_poll:g} s)  "
        f"p50 {arq_poll / 2 * 1000:.0f}  p99 {0.99 * arq_poll * 1000:.0f} ms"
    )
    print(
        f"  waiting floor, relay poll alone: U(0, {relay_poll:g} s) + U(0, {arq_poll:g} s)  "
        f"p50 {(arq_poll + relay_poll) / 2 * 1000:.0f}  "
        f"p99 {uniform_sum_quantile(arq_poll, relay_poll, 0.99) * 1000:.0f} ms"
    )
    print(f"  API check: {checked[0]}/{checked[1]} sampled /health answers include the interaction")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500, help="interactions per second")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--history", type=int, default=10, help="past interactions per customer")
    parser.add_argument("--batch", type=int, default=10, help="interactions per request")
    args = parser.parse_args()

    log_file = tempfile.NamedTemporaryFile(prefix="latency-worker-", suffix=".log", delete=False)
    with log_file as log, scratch_database() as settings:
        dsn = asyncpg_dsn(settings.require_database_url())
        customers = asyncio.run(seed(settings, args.customers, args.channels, args.history))
        key = asyncio.run(admin_key(settings))
        with (
            uvicorn("services.api.app:create_app", settings, API_WORKERS) as base,
            scorer(settings, log) as worker,
        ):
            prescore_seconds = asyncio.run(prescore(base, key))
            print(f"prescore: {args.customers:,} customers in {prescore_seconds:.1f} s")
            round_trips = asyncio.run(db_round_trip(dsn))
            total = int(args.rate * args.seconds)
            run = Run(base, key, dsn, customers, total, args.batch)
            asyncio.run(run.run(args.rate))
            jobs = asyncio.run(run.relay_times())
            checked = asyncio.run(run.spot_check())
    report(run, args, jobs, checked, round_trips, settings)
    print(f"worker exit code: {worker.returncode}  log: {log_file.name}")


if __name__ == "__main__":
    main()

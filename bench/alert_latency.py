"""From an interaction that trips an alert rule to the subscriber's 2xx for its webhook.

Setup: a scratch database seeded as bench/latency.py seeds it (customers with past orders and
visits, no complaints), all scored once; the default alert rules switched off and one rule
added, "a complaint in 90 days" (`complaints`, count 1); a webhook endpoint subscribed to
`alert.opened`, pointing at a real HTTP receiver on this machine; the API (uvicorn, 2 workers)
and ONE `retention worker` process, as deployed.

Load: complaints at a steady `--rate` for `--seconds` through `POST /v1/interactions/batch`
(`--batch` per request, 10 by default, as integrations send them), each about a different
customer, so each one opens exactly one alert and owes exactly one webhook.

Measure: latency = the receiver's arrival time of the `alert.opened` webhook naming the
customer - the client's arrival time of the 2xx for that customer's complaint (the receiver
answers 200 at once, so its 2xx leaves within a millisecond of the arrival). Both clocks are
this machine's. Counts: webhooks received, distinct `webhook-id`s, duplicates (an id seen twice)
and lost (a complaint with no webhook `--drain` seconds after the last post). Every signature
is verified with the `standardwebhooks` library. Target: p99 <= 2 s, none lost, none duplicated.

Usage: python -m bench.alert_latency [--rate 200] [--seconds 60]
"""

import argparse
import asyncio
import tempfile
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack, ExitStack

import asyncpg
import httpx
import numpy as np
import orjson
from standardwebhooks.webhooks import Webhook

from bench.harness import PROCESS_ENV, admin_key, scratch_database, uvicorn
from bench.latency import API_WORKERS, CONNECTIONS, line, prescore, scorer, seed
from services.core.crypto import SecretBox
from services.core.db import asyncpg_dsn
from services.core.webhooks.signing import new_secret
from tests.receiver import Receiver

TARGET_P99 = 2.0

_SETUP = """
UPDATE alert_rules SET active = false;
INSERT INTO alert_rules (id, name, kind, subject, params, severity)
VALUES (gen_random_uuid(), 'A complaint', 'complaints', 'customer', '{"count": 1}', 'high');
"""


async def subscribe(dsn: str, url: str) -> str:
    """The bench's rule and its endpoint, written directly (the secret encrypted as the API
    stores it): the API for both is tested elsewhere, and this keeps setup out of the
    measurement."""
    secret = new_secret()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_SETUP)
        await conn.execute(
            "INSERT INTO webhook_endpoints (id, url, event_types, secret) "
            "VALUES ($1, $2, '{alert.opened}', $3)",
            uuid.uuid4(),
            url,
            SecretBox([PROCESS_ENV["RETENTION_SECRET_KEY"]]).encrypt(secret),
        )
    finally:
        await conn.close()
    return secret


async def complain(
    base: str, key: str, customers: list[str], rate: float, batch: int
) -> tuple[dict[str, float], float]:
    """POST one complaint per customer at `rate`, `batch` per request; each customer's 2xx
    time, and the worst lag of the schedule."""
    queue: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
    answered: dict[str, float] = {}
    lag = 0.0
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    async def post(group: list[str], sent: float) -> None:
        occurred = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sent))
        items = [
            {
                "customer_id": customer,
                "kind": "complaint",
                "occurred_at": occurred,
                "external_id": f"alert-latency-{customer}",
            }
            for customer in group
        ]
        http = await queue.get()
        try:
            response = await http.post(
                "/v1/interactions/batch", content=orjson.dumps({"items": items})
            )
        finally:
            queue.put_nowait(http)
        if response.status_code == 200:
            done = time.time()
            for customer, result in zip(group, response.json()["results"], strict=True):
                if result.get("id"):
                    answered[customer] = done

    async with AsyncExitStack() as stack:
        for _ in range(CONNECTIONS):
            client = httpx.AsyncClient(
                base_url=base, headers=headers, timeout=60, limits=httpx.Limits(max_connections=1)
            )
            queue.put_nowait(await stack.enter_async_context(client))
        loop = asyncio.get_running_loop()
        start, wall = loop.time(), time.time()
        tasks = []
        for first in range(0, len(customers), batch):
            due = start + first / rate
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            lag = max(lag, loop.time() - due)
            group = customers[first : first + batch]
            tasks.append(asyncio.create_task(post(group, wall + first / rate)))
        await asyncio.gather(*tasks)
    return answered, lag


_STAGES = """
SELECT a.subject_id::text AS customer, a.opened_at, m.created_at AS published,
  d.finished_at AS delivered
FROM alerts a
JOIN webhook_messages m ON m.type = 'alert.opened' AND m.body->'data'->>'alert_id' = a.id::text
JOIN webhook_deliveries d ON d.message_id = m.id
"""


async def stage_times(dsn: str) -> dict[str, dict[str, float]]:
    """Per customer: when its alert opened (the scoring transaction's start), and when the
    delivery was recorded."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(_STAGES)
    finally:
        await conn.close()
    return {
        r["customer"]: {
            "opened": r["opened_at"].timestamp(),
            "recorded": r["delivered"].timestamp() if r["delivered"] else float("nan"),
        }
        for r in rows
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200, help="complaints per second")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--history", type=int, default=6, help="past interactions per customer")
    parser.add_argument("--workers", type=int, default=1, help="`retention worker` processes")
    parser.add_argument("--batch", type=int, default=10, help="complaints per request")
    parser.add_argument("--drain", type=float, default=30, help="seconds to wait for stragglers")
    args = parser.parse_args()
    total = int(args.rate * args.seconds)

    log_file = tempfile.NamedTemporaryFile(prefix="alert-worker-", suffix=".log", delete=False)
    with log_file as log, scratch_database() as settings, Receiver() as receiver:
        dsn = asyncpg_dsn(settings.require_database_url())
        customers = asyncio.run(seed(settings, total, 0, args.history))
        key = asyncio.run(admin_key(settings))
        allow = {"RETENTION_WEBHOOK_ALLOW_PRIVATE": "true"}
        with (
            uvicorn("services.api.app:create_app", settings, API_WORKERS) as base,
            ExitStack() as workers,
        ):
            for _ in range(args.workers):
                workers.enter_context(scorer(settings, log, allow))
            print(f"prescore: {total:,} customers in {asyncio.run(prescore(base, key)):.1f} s")
            secret = asyncio.run(subscribe(dsn, receiver.url))
            answered, lag = asyncio.run(complain(base, key, customers, args.rate, args.batch))
            deadline = time.monotonic() + args.drain
            while len(receiver.requests) < len(answered) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2)  # a late duplicate would show up here
            stages = asyncio.run(stage_times(dsn))
        requests = receiver.requests

    verifier = Webhook(secret)
    arrived: dict[str, float] = {}
    ids: Counter[str] = Counter()
    forged = 0
    for request in requests:
        try:
            payload = verifier.verify(request.body, request.headers)
        except Exception:  # noqa: BLE001 - any verification failure counts
            forged += 1
            continue
        ids[request.headers["webhook-id"]] += 1
        customer = payload["data"]["subject_id"]
        arrived.setdefault(customer, request.received_at.timestamp())
    latency = np.array([arrived[c] - answered[c] for c in answered if c in arrived])
    lost = len(answered) - len(latency)
    duplicated = sum(n - 1 for n in ids.values())
    p99 = float(np.percentile(latency, 99)) if latency.size else float("inf")
    verdict = "PASS" if p99 <= TARGET_P99 and not lost and not duplicated else "FAIL"
    print(
        f"complaints: {total:,} posted at {args.rate:g}/s (max schedule lag {lag * 1000:.1f} ms), "
        f"{len(answered):,} answered 2xx"
    )
    print(
        f"webhooks: {len(requests):,} received, {len(ids):,} distinct webhook-ids, "
        f"{duplicated} duplicated, {lost} lost, {forged} failing verification"
    )
    print("from the API's 2xx to ...")
    for stage in ("opened", "recorded"):
        offsets = [stages[c][stage] - answered[c] for c in answered if c in stages]
        print(
            line(
                f"  alert {stage}" if stage == "opened" else "  delivery recorded",
                np.array(offsets),
            )
        )
    print(line("  receiver", latency, f"   target p99 <= {TARGET_P99:g} s: {verdict}"))
    print(f"worker log: {log_file.name}")


if __name__ == "__main__":
    main()

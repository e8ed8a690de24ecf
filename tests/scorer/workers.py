"""Run the real arq worker in burst mode, as tests do."""

import warnings
from typing import Any

from arq.worker import Worker

from services.core.config import Settings
from services.scorer.worker import worker_options


def burst_worker(settings: Settings) -> Worker:
    """The worker as deployed, minus its cron jobs: a run that crossed the top of a minute
    would add the SLA check to the jobs a test counts."""
    options: dict[str, Any] = {
        **worker_options(settings),
        "handle_signals": False,
        "cron_jobs": [],
    }
    return Worker(**options, burst=True)


async def run_burst(settings: Settings) -> Worker:
    """Run a worker until the queue is empty, jobs it enqueues included."""
    worker = burst_worker(settings)
    try:
        await worker.async_run()
    finally:
        with warnings.catch_warnings():
            # arq 0.28 closes its pool with redis-py's deprecated `close()`
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await worker.close()
    return worker

"""A worker asked to stop lets the jobs it is running finish instead of cutting them off."""

import asyncio
import signal
import warnings
from typing import Any

from arq import ArqRedis, func
from arq.worker import Worker

from services.core.config import Settings
from services.scorer.worker import JOB_COMPLETION_WAIT_SECONDS, worker_options


async def test_a_stopping_worker_finishes_its_running_job(
    settings: Settings, arq_redis: ArqRedis
) -> None:
    started = asyncio.Event()

    async def slow(ctx: dict[str, Any]) -> str:
        started.set()
        await asyncio.sleep(0.5)
        return "finished"

    options: dict[str, Any] = {
        **worker_options(settings),
        "functions": [func(slow, name="slow")],
        "cron_jobs": [],
        "handle_signals": False,
    }
    assert options["job_completion_wait"] == JOB_COMPLETION_WAIT_SECONDS
    job = await arq_redis.enqueue_job("slow", _queue_name=settings.queue_name)
    assert job is not None
    worker = Worker(**options)
    running = asyncio.create_task(worker.async_run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        worker.handle_sig_wait_for_completion(signal.SIGTERM)
        assert not worker.allow_pick_jobs
        await asyncio.gather(running, return_exceptions=True)
        assert (worker.jobs_complete, worker.jobs_failed, worker.jobs_retried) == (1, 0, 0)
        assert await job.result(timeout=1) == "finished"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await worker.close()

"""Waiting for jobs to finish, for synchronous requests.

One Redis pub/sub subscription per API process (channel ``s2i:job-events``) resolves the
futures of waiting requests. A waiter also re-reads the job record every
``poll_interval_s``, so a missed event (a dropped subscription, say) costs latency, never a
hung request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict

from shared.job_store import AsyncJobStore
from shared.jobs import JobRecord

log = logging.getLogger(__name__)


class JobWaiter:
    def __init__(self, jobs: AsyncJobStore, poll_interval_s: float = 1.0) -> None:
        self.jobs = jobs
        self.poll_interval_s = poll_interval_s
        self._waiting: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="job-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                async with contextlib.aclosing(self.jobs.finished_jobs()) as finished:
                    async for job_id in finished:
                        for fut in self._waiting.pop(job_id, set()):
                            if not fut.done():
                                fut.set_result(None)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("job event subscription lost; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)

    async def wait(self, job_id: str, until: float) -> JobRecord | None:
        """The job once final, or its latest record when ``until`` (unix time) passes."""
        while True:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting[job_id].add(fut)
            try:
                job = await self.jobs.read(job_id)
                remaining = until - time.time()
                if job is None or job.state.final or remaining <= 0:
                    return job
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fut, timeout=min(remaining, self.poll_interval_s))
            finally:
                waiting = self._waiting.get(job_id)
                if waiting is not None:
                    waiting.discard(fut)
                    if not waiting:
                        self._waiting.pop(job_id, None)

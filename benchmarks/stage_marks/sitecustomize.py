"""Timestamps inside the API and the worker, for ``python -m benchmarks.latency --marks``.

Python imports ``sitecustomize`` at start-up from the first folder on ``sys.path`` that has
one; the benchmark puts this folder first on its stack's ``PYTHONPATH`` and names an output
folder in ``S2I_STAGE_MARKS``. Without that variable this file does nothing. With it, it wraps
a few functions of the API (``--port`` in its command line) or of a worker (``--hostname``)
and appends ``<mark> <job id> <unix time>`` lines to ``<S2I_STAGE_MARKS>/<pid>.txt``:

    API:    enqueue, stored (job record, input and Celery message written), event (the
            finish notification reached the waiter), waited, response (the result read and
            the response built)
    worker: task (the Celery task began), submit / batched (examples to the batcher and
            back: the model and its hand-offs), finish_in / finish_out (the finish script)

The wrappers add a few microseconds each; nothing here runs in production images.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

OUT_DIR = os.environ.get("S2I_STAGE_MARKS")


def _writer(folder: str) -> Any:
    return (Path(folder) / f"{os.getpid()}.txt").open("a", buffering=1)


def mark(name: str, job_id: str) -> None:
    _OUT.write(f"{name} {job_id} {time.time():.6f}\n")


def _wrap_api() -> None:
    from services.api import submit, waiter
    from shared import job_store

    enqueue, create = submit.enqueue, job_store.AsyncJobStore.create
    result_response, wait = submit.result_response, waiter.JobWaiter.wait
    finished_jobs = job_store.AsyncJobStore.finished_jobs

    async def enqueue_marked(state: Any, job: Any, *args: Any, **kw: Any) -> Any:
        mark("enqueue", job.id)
        return await enqueue(state, job, *args, **kw)

    async def create_marked(self: Any, job: Any, data: Any, message: Any = None) -> None:
        await create(self, job, data, message)
        mark("stored", job.id)

    async def finished_marked(self: Any) -> AsyncGenerator[str, None]:
        async for job_id in finished_jobs(self):
            mark("event", job_id)
            yield job_id

    async def wait_marked(self: Any, job_id: str, until: float) -> Any:
        job = await wait(self, job_id, until)
        mark("waited", job_id)
        return job

    async def response_marked(state: Any, request: Any, job: Any, **kw: Any) -> Any:
        response = await result_response(state, request, job, **kw)
        mark("response", job.id)
        return response

    submit.enqueue, submit.result_response = enqueue_marked, response_marked
    job_store.AsyncJobStore.create = create_marked  # type: ignore[method-assign]
    job_store.AsyncJobStore.finished_jobs = finished_marked  # type: ignore[method-assign]
    waiter.JobWaiter.wait = wait_marked  # type: ignore[method-assign]


def _wrap_worker() -> None:
    from services.worker import jobs
    from shared import job_store

    run_job, submit, finish = jobs.run_job, jobs._submit, job_store.JobStore.finish

    def run_marked(rt: Any, job_id: str) -> Any:
        mark("task", job_id)
        return run_job(rt, job_id)

    def submit_marked(rt: Any, job: Any, model: Any, examples: Any) -> Any:
        mark("submit", job.id)
        results = submit(rt, job, model, examples)
        mark("batched", job.id)
        return results

    def finish_marked(self: Any, job: Any, *args: Any, **kw: Any) -> Any:
        mark("finish_in", job.id)
        done = finish(self, job, *args, **kw)
        mark("finish_out", job.id)
        return done

    jobs.run_job, jobs._submit = run_marked, submit_marked  # before celery_app imports run_job
    job_store.JobStore.finish = finish_marked  # type: ignore[method-assign]


if OUT_DIR:
    _OUT = _writer(OUT_DIR)
    command = " ".join(sys.argv)
    if "--hostname" in command:
        _wrap_worker()
    elif "--port" in command:
        _wrap_api()

"""The worker's Celery app: the shared configuration plus the inference tasks.

Run it with ``python -m services.worker`` (threads pool, one process per GPU).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_init, worker_shutdown

from services.worker.jobs import run_job
from services.worker.runtime import close_runtime, get_runtime
from shared.celery_app import make_celery
from shared.jobs import GENERATE_TASK, TRANSLATE_TASK, JobRecord, task_name
from shared.settings import get_settings

log = logging.getLogger(__name__)

app = make_celery(get_settings(), name="sketch2image-worker")


@app.task(name=TRANSLATE_TASK, ignore_result=True)
def translate(job_id: str) -> None:
    run_job(get_runtime(), job_id)


@app.task(name=GENERATE_TASK, ignore_result=True)
def generate(job_id: str) -> None:
    run_job(get_runtime(), job_id)


def send_job(job: JobRecord) -> None:
    """Send ``job``'s message again (a dead worker's job, requeued by the runtime)."""
    app.send_task(task_name(job.kind), args=[job.id], queue=get_settings().inference_queue)


@worker_init.connect
def _start_runtime(**_: Any) -> None:
    get_runtime(send_job)  # load models before the first message is taken


@worker_shutdown.connect
def _stop_runtime(**_: Any) -> None:
    close_runtime()

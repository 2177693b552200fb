"""The Celery configuration every service shares (the API sends, workers and trainer consume).

JSON only (no pickle anywhere), late acks so a job whose worker dies is delivered again, one
prefetched message per worker thread so the dynamic batcher sees enough work to fill batches,
and results kept in our own job records rather than a Celery result backend.
"""

from __future__ import annotations

from celery import Celery

from shared.jobs import GENERATE_TASK, TRANSLATE_TASK
from shared.settings import Settings

TRAIN_TASK = "s2i.train"


def make_celery(settings: Settings, name: str = "sketch2image") -> Celery:
    app = Celery(name, broker=settings.redis_url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # x concurrency (threads) = messages in hand
        # a message not acked within this time is delivered again: longer than any job
        broker_transport_options={"visibility_timeout": int(settings.max_timeout_s) + 600},
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.inference_queue,
        task_routes={
            TRANSLATE_TASK: {"queue": settings.inference_queue},
            GENERATE_TASK: {"queue": settings.inference_queue},
            TRAIN_TASK: {"queue": settings.training_queue},
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,  # no pidbox queues: JSON task messages only
    )
    return app

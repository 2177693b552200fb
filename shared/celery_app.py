"""The Celery configuration every service shares (the API sends, workers and trainer consume).

JSON only (no pickle anywhere), one prefetched message per worker thread so the dynamic
batcher sees enough work to fill batches, and results kept in our own job records rather than
a Celery result backend.

A worker that dies (SIGKILL, out of memory) never acks the messages it took. With Redis as the
broker, kombu keeps each taken message in its ``unacked`` hash and puts it back in the queue
only once it is older than the visibility timeout (default 1 h, checked every 100 s).
Late acks keep those messages; ``redelivery_s`` (twice the worker heartbeat TTL, checked every
second) brings back one taken but not yet started; the jobs it had started are requeued
sooner by the other workers' heartbeat sweep (``services.worker.runtime``). A message
delivered twice (one still running past ``redelivery_s``, or both a restored message and the
sweep's) finds its job running or finished and is dropped: a job runs and is reported once
(``shared.job_scripts``).

Training runs take hours: the trainer's app (``long_tasks``) keeps its taken messages in
unacked keys of its own, which the inference workers' sweeps never see, and lets them come
back only after ``TRAINING_REDELIVERY_S``.
"""

from __future__ import annotations

from celery import Celery

from shared.jobs import GENERATE_TASK, TRANSLATE_TASK
from shared.settings import Settings

TRAIN_TASK = "s2i.train"
TRAINING_REDELIVERY_S = 7 * 24 * 3600
TRAINING_UNACKED = {  # kombu's keys for the messages a trainer took
    "unacked_key": "unacked:training",
    "unacked_index_key": "unacked_index:training",
    "unacked_mutex_key": "unacked_mutex:training",
}


def redelivery_s(settings: Settings) -> int:
    """Seconds after which a message taken but not acked goes back to the queue."""
    return max(1, round(2 * settings.worker_heartbeat_ttl_s))


def transport_options(settings: Settings, long_tasks: bool) -> dict[str, object]:
    """kombu's Redis options: when and how often a message taken but not acked returns."""
    if long_tasks:
        return {"visibility_timeout": TRAINING_REDELIVERY_S, **TRAINING_UNACKED}
    redelivery = redelivery_s(settings)
    return {
        "visibility_timeout": redelivery,
        "unacked_restore_interval": 1,  # look for messages to restore every second
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": redelivery,  # a sweeper killed mid-sweep blocks no longer
    }


def make_celery(settings: Settings, name: str = "sketch2image", long_tasks: bool = False) -> Celery:
    """The app of a service; ``long_tasks`` for the trainer (see the module's docstring)."""
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
        broker_transport_options=transport_options(settings, long_tasks),
        broker_connection_retry=True,  # a worker reconnects after a Redis restart
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # for as long as Redis is away
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

"""The trainer service's Celery app: a worker on the training queue with one slot (one run
per GPU at a time: queued runs wait) and a heartbeat the API checks.

Each run reads its record from Redis, trains with the record's recipe, dataset (relative to
``S2I_DATA_ROOT``, never outside it) and overrides, reports progress into the record, checks
the cancel flag every step, and publishes to the model volume, which the inference workers
hot-reload (``runs.run_training``). Started by ``python -m services.trainer serve``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time

from redis import Redis
from redis.exceptions import RedisError

from services.trainer.service.runs import run_training
from shared.celery_app import TRAIN_TASK, make_celery
from shared.settings import Settings, get_settings
from shared.trainings import TRAINER_HEARTBEAT_S, trainer_key

log = logging.getLogger(__name__)

app = make_celery(get_settings(), name="sketch2image-trainer", long_tasks=True)


@app.task(name=TRAIN_TASK, ignore_result=True, acks_late=True)
def train_task(training_id: str) -> None:
    settings = get_settings()
    redis = Redis.from_url(settings.redis_url)
    try:
        run_training(settings, redis, training_id)
    finally:
        redis.close()


def heartbeat(settings: Settings, stop: threading.Event) -> None:
    """Tell the API a trainer is up (``/v1/trainings`` answers 503 without one)."""
    key = trainer_key(f"{socket.gethostname()}-{os.getpid()}")
    redis = Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        while True:
            try:
                redis.set(key, str(time.time()), ex=int(TRAINER_HEARTBEAT_S * 3))
            except RedisError as exc:
                log.warning("trainer heartbeat failed: %s", exc)
            if stop.wait(TRAINER_HEARTBEAT_S):
                break
        with contextlib.suppress(RedisError):
            redis.delete(key)
    finally:
        redis.close()


def worker_main(settings: Settings) -> None:
    app.worker_main(
        [
            "worker",
            "--pool=solo",
            "--concurrency=1",
            f"--queues={settings.training_queue}",
            f"--loglevel={settings.log_level}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--prefetch-multiplier=1",
        ]
    )

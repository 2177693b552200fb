"""``python -m services.trainer serve``: the trainer as a long-lived service.

A Celery worker on the training queue with one slot (one run per GPU at a time: queued runs
wait). Each run reads its record from Redis, trains with the record's recipe, dataset
(relative to ``S2I_DATA_ROOT``, never outside it) and overrides, reports progress into the
record, checks the cancel flag every step, and publishes to the model volume, which the
inference workers hot-reload.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from services.trainer.cli import add_command
from services.trainer.config import TrainConfig
from services.trainer.progress import Progress
from shared.celery_app import TRAIN_TASK, make_celery
from shared.registry import Registry
from shared.settings import Settings, get_settings
from shared.trainings import (
    TRAINER_HEARTBEAT_S,
    TRAINING_TTL_S,
    TrainingRecord,
    TrainingState,
    cancel_key,
    dataset_problem,
    trainer_key,
    training_key,
)

log = logging.getLogger(__name__)

app = make_celery(get_settings(), name="sketch2image-trainer")


def resolve_dataset(settings: Settings, dataset: str) -> str:
    """The dataset's path on the data volume (or synthetic://N); ValueError if outside it."""
    why = dataset_problem(dataset)
    if why is not None:
        raise ValueError(why)
    if dataset.startswith("synthetic://"):
        return dataset
    root = settings.data_root.resolve()
    path = (root / dataset).resolve()
    if not path.is_relative_to(root):
        raise ValueError("dataset resolves outside the data volume")
    if not path.is_dir():
        raise ValueError(f"dataset {dataset!r} is not a folder on the data volume")
    return str(path)


class RunReporter:
    """Writes a run's record to Redis; answers the loop's ``should_stop``."""

    def __init__(self, redis: Redis, record: TrainingRecord) -> None:
        self.redis = redis
        self.record = record
        self._last_cancel_check = 0.0
        self._canceled = False

    def save(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self.record, key, value)
        self.redis.set(
            training_key(self.record.id), self.record.model_dump_json(), ex=TRAINING_TTL_S
        )

    def on_progress(self, progress: Progress) -> None:
        self.save(progress=progress.model_dump(mode="json"))

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._canceled and now - self._last_cancel_check > 0.5:
            self._last_cancel_check = now
            self._canceled = bool(self.redis.exists(cancel_key(self.record.id)))
            if self._canceled and self.record.state is TrainingState.running:
                self.save(state=TrainingState.canceling)  # progress writes keep it
        return self._canceled


def run_training(settings: Settings, redis: Redis, training_id: str) -> TrainingState | None:
    raw = redis.get(training_key(training_id))
    if not isinstance(raw, bytes):
        log.warning("training %s has no record; dropped", training_id)
        return None
    reporter = RunReporter(redis, TrainingRecord.model_validate_json(raw))
    if reporter.record.state.final or reporter.should_stop():
        reporter.save(
            state=TrainingState.canceled, finished_at=reporter.record.finished_at or time.time()
        )
        return TrainingState.canceled
    reporter.save(state=TrainingState.running, started_at=time.time())
    try:
        from services.trainer.loop import train

        record = reporter.record
        config = TrainConfig.load(
            overrides=None,
            **{
                **record.overrides,
                "recipe": record.recipe,
                "data": resolve_dataset(settings, record.dataset),
                "run_dir": settings.run_root / f"{record.recipe}-{record.id}",
            },
        )
        final = train(
            config,
            registry=Registry(settings.model_root),
            on_progress=reporter.on_progress,
            should_stop=reporter.should_stop,
            resume=_latest_checkpoint(Path(config.run_dir or "")),
        )
    except Exception as exc:
        log.exception("training %s failed", training_id)
        reporter.save(
            state=TrainingState.failed,
            finished_at=time.time(),
            error=f"{type(exc).__name__}: {exc}",
        )
        return TrainingState.failed
    state = TrainingState.canceled if final.state == "canceled" else TrainingState.succeeded
    reporter.save(state=state, finished_at=time.time(), progress=final.model_dump(mode="json"))
    return state


def _latest_checkpoint(run_dir: Path) -> Path | None:
    """A run started again with the same id resumes from its last checkpoint."""
    path = run_dir / "checkpoints" / "latest.pt"
    return path if path.is_file() else None


@app.task(name=TRAIN_TASK, ignore_result=True, acks_late=True)
def train_task(training_id: str) -> None:
    settings = get_settings()
    redis = Redis.from_url(settings.redis_url)
    try:
        run_training(settings, redis, training_id)
    finally:
        redis.close()


def _heartbeat(settings: Settings, stop: threading.Event) -> None:
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


@add_command(
    "serve", "run as a service: take training runs from the training queue", lambda p: None
)
def _serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(settings, stop), daemon=True)
    beat.start()
    try:
        _worker_main(settings)
    finally:
        stop.set()
        beat.join(5)
    return 0


def _worker_main(settings: Settings) -> None:
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

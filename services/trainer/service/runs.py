"""One training run taken from the queue: its record in Redis, its dataset on the data
volume, the loop, and the record's final state (the run logic of the trainer service)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from redis import Redis

from services.trainer.config import TrainConfig
from services.trainer.engine.progress import Progress
from shared.registry import Registry
from shared.settings import Settings
from shared.trainings import (
    TRAINING_TTL_S,
    TrainingRecord,
    TrainingState,
    cancel_key,
    dataset_problem,
    training_key,
)

log = logging.getLogger(__name__)


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
    if reporter.record.state.final:  # a message delivered again after the run ended
        log.warning("training %s already %s; dropped", training_id, reporter.record.state.value)
        return reporter.record.state
    if reporter.should_stop():
        reporter.save(
            state=TrainingState.canceled, finished_at=reporter.record.finished_at or time.time()
        )
        return TrainingState.canceled
    reporter.save(state=TrainingState.running, started_at=time.time())
    try:
        from services.trainer.engine.loop import train

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

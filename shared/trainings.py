"""Training runs started through the API: the record in Redis and the cancel flag.

- ``s2i:training:{id}``         JSON :class:`TrainingRecord` (kept ``TRAINING_TTL_S``)
- ``s2i:training:{id}:cancel``  set by ``DELETE /v1/trainings/{id}``; the trainer stops at
  the next step and leaves a resumable checkpoint

The Celery message on the training queue carries ``[training_id]`` only.
"""

from __future__ import annotations

import re
import time
from enum import StrEnum
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

TRAINING_TTL_S = 30 * 86400
SYNTHETIC_RE = re.compile(r"^synthetic://\d{1,7}$")


# the trainer's recipes (services/trainer/recipes/, checked against its registry in a test);
# here, torch-free, for the API and the command line
RecipeName = Literal["pix2pix", "resnet-cgan", "cyclegan", "sketchygan", "siamese-gan", "vae"]
RECIPE_NAMES: tuple[str, ...] = get_args(RecipeName)


class TrainingState(StrEnum):
    queued = "queued"
    running = "running"
    canceling = "canceling"  # asked to stop: checkpointing at the next step
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def final(self) -> bool:
        return self in (TrainingState.succeeded, TrainingState.failed, TrainingState.canceled)


TRAINER_KEY_PREFIX = "s2i:trainer:"  # + host/pid: a trainer service's heartbeat (expiring)
TRAINER_HEARTBEAT_S = 5.0


def trainer_key(trainer_id: str) -> str:
    return TRAINER_KEY_PREFIX + trainer_id


def training_key(training_id: str) -> str:
    return f"s2i:training:{training_id}"


def cancel_key(training_id: str) -> str:
    return f"s2i:training:{training_id}:cancel"


class TrainingRecord(BaseModel):
    id: str
    state: TrainingState = TrainingState.queued
    recipe: str
    dataset: str  # relative to S2I_DATA_ROOT, or synthetic://N
    overrides: dict[str, Any] = Field(default_factory=dict)
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    progress: dict[str, Any] = Field(default_factory=dict)  # the trainer's latest Progress
    error: str | None = None


def dataset_problem(dataset: str) -> str | None:
    """Why ``dataset`` is not an acceptable path on the data volume (None: acceptable).

    Only relative paths below the data root are accepted: nothing in a request may point
    elsewhere on the trainer's filesystem.
    """
    if SYNTHETIC_RE.fullmatch(dataset):
        return None
    if not dataset or dataset.startswith(("/", "\\")) or ":" in dataset:
        return "dataset must be a path relative to the data volume, or synthetic://N"
    parts = re.split(r"[\\/]+", dataset)
    if any(p in ("", ".", "..") for p in parts) or any(p.startswith(".") for p in parts):
        return "dataset must not contain '..', '.', empty or hidden path parts"
    return None

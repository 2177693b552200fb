"""Jobs in Redis: the one record the API writes and the worker advances.

Keys (every one expires; ``docs/architecture.md`` lists when):

- ``s2i:job:{id}``     hash: the :class:`JobRecord` fields, as strings
- ``s2i:input:{id}``   the upload fitted to the model (``shared.fitted_input``) or as sent (never
  in the Celery message), deleted when the job ends
- ``s2i:result:{id}``  the encoded result image, kept ``S2I_RESULT_TTL_S``
- ``s2i:jobs:running`` sorted set: the ids of running jobs (by start time), for crash recovery
- ``s2i:idem:{key}``   Idempotency-Key -> job id
- ``s2i:worker:{id}``  a worker's heartbeat, ``shared.worker_beat.WorkerBeat`` JSON (expires
  when it dies)
- channel ``s2i:job-events``: a job id is published when its job reaches a final state

Celery messages carry only ``[job_id]`` (JSON), never image bytes. ``shared.job_store`` reads
and writes the job, input, result and heartbeat keys for both the API and the worker.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel

from shared.errors import ErrorKind

EVENTS_CHANNEL = "s2i:job-events"
TRANSLATE_TASK = "s2i.translate"
GENERATE_TASK = "s2i.generate"

JobKind = Literal["translate", "generate"]
OutputFormat = Literal["png", "jpeg", "webp"]
OutputSize = Literal["model", "input"]  # the model's size, or the input's width and height


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"
    expired = "expired"  # its deadline passed before it could run

    @property
    def final(self) -> bool:
        return self not in (JobState.queued, JobState.running)


def task_name(kind: JobKind) -> str:
    """The Celery task that runs jobs of ``kind``."""
    return GENERATE_TASK if kind == "generate" else TRANSLATE_TASK


def new_job_id() -> str:
    return uuid.uuid4().hex


def job_key(job_id: str) -> str:
    return f"s2i:job:{job_id}"


def input_key(job_id: str) -> str:
    return f"s2i:input:{job_id}"


def result_key(job_id: str) -> str:
    return f"s2i:result:{job_id}"


def idempotency_key(key: str) -> str:
    return f"s2i:idem:{key}"


WORKER_KEY_PREFIX = "s2i:worker:"  # + worker id: a worker's heartbeat (JSON, expiring)
RUNNING_JOBS_KEY = "s2i:jobs:running"  # sorted set: job id -> start time
QUEUED_JOBS_KEY = "s2i:jobs:queued"  # sorted set: job id -> when its message was last sent


def worker_key(worker_id: str) -> str:
    return WORKER_KEY_PREFIX + worker_id


class JobRecord(BaseModel):
    id: str
    kind: JobKind = "translate"
    state: JobState = JobState.queued
    model: str
    version: int | None = None  # pinned by the request; None: whatever is served
    served_version: int | None = None  # the version that ran it
    format: OutputFormat = "png"
    keep_aspect: bool = False
    output_size: OutputSize = "model"
    routed_by: str = ""  # "auto: drawing (0.93)" when model=auto chose
    n: int = 1
    seed: int | None = None
    class_name: str | None = None
    condition: str | None = None  # translate: the model's condition value (e.g. style "2")
    input_width: int = 0
    input_height: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    worker: str | None = None  # running: the worker running it (its heartbeat key's suffix)
    run_id: str | None = None  # running: this run's token; only its owner may finish the job
    attempts: int = 0  # runs started (more than one after a crashed worker's job is requeued)
    finished_at: float | None = None
    deadline: float = 0.0  # unix time after which the job must not run
    queue_ms: float | None = None
    compute_ms: float | None = None
    batch_size: int | None = None
    error_type: ErrorKind | None = None
    error_detail: str | None = None
    media_type: str | None = None

    def to_redis(self) -> dict[Any, Any]:  # str -> str; Any for redis-py's invariant Mapping
        data = self.model_dump(mode="json")
        return {k: "" if v is None else str(v) for k, v in data.items()}

    @classmethod
    def from_redis(cls, raw: dict[Any, Any]) -> JobRecord:
        decoded = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        clean: dict[str, Any] = {k: v for k, v in decoded.items() if v != ""}
        if "keep_aspect" in clean:
            clean["keep_aspect"] = clean["keep_aspect"] == "True"
        return cls.model_validate(clean)

    def past_deadline(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) > self.deadline > 0

"""Jobs and worker heartbeats in Redis: :class:`JobStore` for the worker (blocking) and
:class:`AsyncJobStore` for the API, over one key layout (``shared.jobs``) and the Lua scripts
of ``shared.job_scripts``.

A job's state changes only atomically, from the states it may be in: the API creates and
cancels jobs, the worker claims one (``queued`` -> ``running`` under a run id), finishes it
(only under that run id: at most once), and requeues the jobs of workers whose heartbeat
expired. A job that ends is published on ``s2i:job-events`` (which synchronous requests wait
on), its input is deleted, and its record and result expire after ``result_ttl_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Iterable
from typing import Any, cast

from pydantic import ValidationError
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from shared import job_scripts as scripts
from shared.jobs import (
    EVENTS_CHANNEL,
    QUEUED_JOBS_KEY,
    RUNNING_JOBS_KEY,
    WORKER_KEY_PREFIX,
    JobRecord,
    JobState,
    input_key,
    job_key,
    result_key,
    worker_key,
)
from shared.task_messages import QueuedMessage
from shared.worker_beat import WorkerBeat

log = logging.getLogger(__name__)

BEATS = WORKER_KEY_PREFIX + "*"


def _transition_keys(job_id: str) -> list[str]:
    return [job_key(job_id), input_key(job_id), RUNNING_JOBS_KEY, QUEUED_JOBS_KEY]


def _record(raw: dict[Any, Any]) -> JobRecord | None:
    return JobRecord.from_redis(raw) if raw else None


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _beats(values: Iterable[bytes | str | None]) -> list[WorkerBeat]:
    beats = []
    for raw in values:
        if raw is None:  # expired between SCAN and MGET
            continue
        try:
            beats.append(WorkerBeat.model_validate_json(raw))
        except ValidationError:
            log.warning("ignoring a malformed worker heartbeat", exc_info=True)
    return beats


class JobStore:
    """The worker's side: read a job and its input, claim, finish or requeue it, beat."""

    def __init__(self, redis: Redis, ttl_s: int, result_ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s  # a job record and its input, until the job ends
        self.result_ttl_s = result_ttl_s  # a finished job's record and result

    def read(self, job_id: str) -> JobRecord | None:
        """The job's record, or None when it never existed or has expired."""
        return _record(self.redis.hgetall(job_key(job_id)))

    def read_input(self, job_id: str) -> bytes | None:
        data = self.redis.get(input_key(job_id))
        return data if isinstance(data, bytes) else None

    def transition(
        self, job_id: str, from_states: Iterable[JobState], to: JobState, **fields: object
    ) -> bool:
        """Move the job to ``to`` (setting ``fields``) if it is in ``from_states``."""
        args = scripts.transition_args(
            from_states, to, self.result_ttl_s, EVENTS_CHANNEL, job_id, fields
        )
        return self.redis.eval(scripts.TRANSITION, 4, *_transition_keys(job_id), *args) == 1

    def claim(self, job_id: str, worker_id: str, run_id: str, started_at: float) -> bool:
        """Start a queued job as run ``run_id`` of worker ``worker_id``; False when the job is
        not queued (canceled, running elsewhere, finished, or gone)."""
        keys = [job_key(job_id), RUNNING_JOBS_KEY, QUEUED_JOBS_KEY]
        args = [worker_id, run_id, repr(started_at), str(self.ttl_s), job_id]
        return self.redis.eval(scripts.CLAIM, len(keys), *keys, *args) == 1

    def finish(
        self,
        job: JobRecord,
        run_id: str,
        state: JobState,
        result: bytes | None = None,
        **fields: Any,
    ) -> JobRecord | None:
        """End run ``run_id`` of ``job`` in ``state`` (storing ``result`` and ``fields``);
        None, writing nothing, when the job is no longer this run's (it was requeued)."""
        done = JobRecord.model_validate(
            {**job.model_dump(), "state": state, "finished_at": time.time(), **fields}
        )
        update = done.model_dump(mode="json", include={"state", "finished_at", *fields})
        keys = [job_key(job.id), input_key(job.id), result_key(job.id), RUNNING_JOBS_KEY]
        head: list[str | bytes] = [run_id, str(self.result_ttl_s), EVENTS_CHANNEL, job.id]
        args = [*head, result or b"", *scripts.field_args(update)]
        applied = self.redis.eval(scripts.FINISH, len(keys), *keys, *args) == 1
        return done if applied else None

    def requeue_orphans(self) -> list[JobRecord]:
        """Put back to ``queued`` the running jobs whose worker's heartbeat expired (it died);
        returns them, for the caller to send their messages again."""
        ids = [i.decode() for i in cast(list[bytes], self.redis.zrange(RUNNING_JOBS_KEY, 0, -1))]
        if not ids:
            return []
        records = self.redis.pipeline(transaction=False)
        for job_id in ids:
            records.hmget(job_key(job_id), ["state", "worker"])
        owners = {
            job_id: (_text(state), _text(worker) or "")
            for job_id, (state, worker) in zip(ids, records.execute(), strict=True)
        }
        workers = sorted({worker for _, worker in owners.values()})
        beats = self.redis.pipeline(transaction=False)
        for worker in workers:
            beats.exists(worker_key(worker))
        alive = {w: bool(n) for w, n in zip(workers, beats.execute(), strict=True)}
        requeued = []
        for job_id, (state, owner) in owners.items():
            if state == JobState.running.value and alive.get(owner):
                continue
            keys = [job_key(job_id), worker_key(owner), RUNNING_JOBS_KEY, QUEUED_JOBS_KEY]
            args = [owner, job_id, repr(time.time()), str(self.ttl_s)]
            if self.redis.eval(scripts.REQUEUE, len(keys), *keys, *args) != 1:
                continue  # not running (the script only cleaned the set), or its worker lives
            job = self.read(job_id)
            if job is not None:
                log.warning("job %s was running on %s, which died; requeued", job_id, owner)
                requeued.append(job)
        return requeued

    def stale_queued(self, older_than_s: float, limit: int = 100) -> list[JobRecord]:
        """Jobs queued, their message last sent more than ``older_than_s`` ago, each marked as
        sent now (for one caller only, whichever wins): the caller sends their messages
        again. A second message for a job that was not lost after all is dropped on claim."""
        now = time.time()
        cutoff = now - older_than_s
        ids = self.redis.zrangebyscore(QUEUED_JOBS_KEY, "-inf", cutoff, start=0, num=limit)
        stale = []
        for raw in cast(list[bytes], ids):
            job_id = raw.decode()
            keys = [job_key(job_id), QUEUED_JOBS_KEY]
            args = [job_id, repr(cutoff), repr(now), str(self.ttl_s)]
            if self.redis.eval(scripts.RESEND, len(keys), *keys, *args) != 1:
                continue
            job = self.read(job_id)
            if job is not None:
                stale.append(job)
        return stale

    def save_beat(self, beat: WorkerBeat, ttl_s: float) -> None:
        """Announce what a worker serves; the key expires ``ttl_s`` after its last beat."""
        self.redis.set(worker_key(beat.worker), beat.model_dump_json(), px=int(ttl_s * 1000))

    def drop_beat(self, worker_id: str) -> None:
        self.redis.delete(worker_key(worker_id))

    def beats(self) -> list[WorkerBeat]:
        """The heartbeats of the live workers."""
        keys = list(self.redis.scan_iter(match=BEATS, count=500))
        return _beats(self.redis.mget(keys)) if keys else []


class AsyncJobStore:
    """The API's side: create, read, cancel and wait for jobs; read heartbeats."""

    def __init__(self, redis: AsyncRedis, ttl_s: int, result_ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s  # a job record and its input, until the job ends
        self.result_ttl_s = result_ttl_s  # a finished job's record and result

    async def read(self, job_id: str) -> JobRecord | None:
        """The job's record, or None when it never existed or has expired."""
        return _record(await self.redis.hgetall(job_key(job_id)))

    async def create(
        self, job: JobRecord, data: bytes | None, message: QueuedMessage | None = None
    ) -> None:
        """Store the record and the input, both expiring after the job TTL (or when the job
        ends), and push ``message`` (its Celery message) in the same transaction."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(job_key(job.id), mapping=job.to_redis())
        pipe.expire(job_key(job.id), self.ttl_s)
        if data is not None:
            pipe.set(input_key(job.id), data, ex=self.ttl_s)
        pipe.zadd(QUEUED_JOBS_KEY, {job.id: time.time()})
        pipe.expire(QUEUED_JOBS_KEY, self.ttl_s)
        if message is not None:
            pipe.lpush(message.queue, message.payload)
        await pipe.execute()

    async def transition(
        self, job_id: str, from_states: Iterable[JobState], to: JobState, **fields: object
    ) -> bool:
        """Move the job to ``to`` (setting ``fields``) if it is in ``from_states``."""
        args = scripts.transition_args(
            from_states, to, self.result_ttl_s, EVENTS_CHANNEL, job_id, fields
        )
        return await self.redis.eval(scripts.TRANSITION, 4, *_transition_keys(job_id), *args) == 1

    async def read_result(self, job_id: str, *, take: bool = False) -> bytes | None:
        """The result's bytes; ``take``: also delete them (a synchronous answer that no
        Idempotency-Key may ask for again: steady sync load then keeps no results)."""
        key = result_key(job_id)
        payload = await (self.redis.getdel(key) if take else self.redis.get(key))
        return payload.encode() if isinstance(payload, str) else payload

    async def finished_jobs(self) -> AsyncGenerator[str, None]:
        """The ids of jobs as they reach a final state (subscribed until closed)."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(EVENTS_CHANNEL)
            async for message in pubsub.listen():
                data = message.get("data")
                yield data.decode() if isinstance(data, bytes) else str(data)
        finally:
            await pubsub.aclose()

    async def beats(self) -> list[WorkerBeat]:
        """The heartbeats of the live workers."""
        keys = [k async for k in self.redis.scan_iter(match=BEATS, count=500)]
        return _beats(await self.redis.mget(keys)) if keys else []

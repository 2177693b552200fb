"""The job store's two faces against a real Redis: what one writes the other reads, state
changes are atomic and published once final, and heartbeats keep their wire format."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from shared.errors import ErrorKind
from shared.job_store import AsyncJobStore, JobStore
from shared.jobs import (
    QUEUED_JOBS_KEY,
    RUNNING_JOBS_KEY,
    JobRecord,
    JobState,
    input_key,
    job_key,
    new_job_id,
    result_key,
    task_name,
    worker_key,
)
from shared.manifest import Manifest, TensorSpec
from shared.task_messages import task_message
from shared.worker_beat import ServedModel, WorkerBeat

TTL_S = 60
RESULT_TTL_S = 20
AGE_S = 0.5  # how long a queued job waits before its message counts as lost, in these tests
T = TypeVar("T")


def run_async(redis_url: str, use: Callable[[AsyncJobStore], Awaitable[T]]) -> T:
    """``use`` run on the API's face, with a client of its own event loop."""

    async def main() -> T:
        redis = AsyncRedis.from_url(redis_url)
        try:
            return await use(AsyncJobStore(redis, TTL_S, RESULT_TTL_S))
        finally:
            await redis.aclose()

    return asyncio.run(main())


@pytest.fixture
def store(redis_db: Redis) -> JobStore:
    return JobStore(redis_db, TTL_S, RESULT_TTL_S)


def new_job(**fields: Any) -> JobRecord:
    now = time.time()
    return JobRecord(id=new_job_id(), model="m", created_at=now, deadline=now + 30, **fields)


def test_what_the_api_creates_the_worker_reads(
    redis_url: str, redis_db: Redis, store: JobStore
) -> None:
    job = new_job(format="webp", output_size="input", keep_aspect=True, condition="2")
    run_async(redis_url, lambda jobs: jobs.create(job, b"image bytes"))

    assert store.read(job.id) == job
    assert store.read_input(job.id) == b"image bytes"
    # the wire format: one hash of strings, both keys expiring after the job TTL
    raw = {k.decode(): v.decode() for k, v in redis_db.hgetall(job_key(job.id)).items()}
    assert raw == job.to_redis()
    assert raw["keep_aspect"] == "True"
    assert raw["state"] == "queued"
    assert 0 < redis_db.ttl(job_key(job.id)) <= TTL_S
    assert 0 < redis_db.ttl(input_key(job.id)) <= TTL_S
    assert store.read(new_job_id()) is None
    assert store.read_input(new_job_id()) is None


def test_the_celery_message_is_pushed_with_the_record(redis_url: str, redis_db: Redis) -> None:
    job = new_job()
    message = task_message(task_name(job.kind), [job.id], "s2i.test-queue")
    run_async(redis_url, lambda jobs: jobs.create(job, b"x", message))

    assert redis_db.lrange("s2i.test-queue", 0, -1) == [message.payload]
    assert redis_db.exists(job_key(job.id), input_key(job.id)) == 2


def test_transitions_are_atomic_and_published_once_final(redis_url: str, store: JobStore) -> None:
    queued, running = new_job(), new_job()
    started = time.time()

    async def scenario(jobs: AsyncJobStore) -> tuple[list[bool], list[str]]:
        for job in (queued, running):
            await jobs.create(job, None)
        events = jobs.finished_jobs()
        listening = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.2)  # subscribed
        applied = [
            store.transition(running.id, (JobState.queued,), JobState.running, started_at=started),
            # a running job cannot be canceled; a queued one can, once
            await jobs.transition(running.id, (JobState.queued,), JobState.canceled),
            await jobs.transition(queued.id, (JobState.queued,), JobState.canceled),
            await jobs.transition(queued.id, (JobState.queued,), JobState.canceled),
            await jobs.transition(new_job_id(), (JobState.queued,), JobState.canceled),
        ]
        first = await asyncio.wait_for(listening, 5)
        await events.aclose()
        return applied, [first]

    applied, published = run_async(redis_url, scenario)
    assert applied == [True, False, True, False, False]
    assert published == [queued.id]  # starting a job is not an event; canceling one is
    after = store.read(running.id)
    assert after is not None
    assert (after.state, after.started_at) == (JobState.running, started)
    canceled = store.read(queued.id)
    assert canceled is not None
    assert canceled.state is JobState.canceled


def test_finish_writes_the_record_and_result_drops_the_input_and_publishes(
    redis_url: str, redis_db: Redis, store: JobStore
) -> None:
    job = new_job()
    pubsub = redis_db.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("s2i:job-events")
    run_async(redis_url, lambda jobs: jobs.create(job, b"image"))
    assert store.claim(job.id, "w1", "run-1", time.time())

    done = store.finish(
        job, "run-1", JobState.expired, error_type=ErrorKind.deadline, error_detail="too late"
    )
    store.finish(job, "run-1", JobState.succeeded, b"late")  # a retried command: no change

    message = None
    for _ in range(50):  # the first message may be the subscription's, which is skipped
        message = message or pubsub.get_message(timeout=0.1)
    assert pubsub.get_message(timeout=0.3) is None  # published once
    pubsub.close()
    assert message is not None
    assert message["data"] == job.id.encode()
    assert done is not None
    assert done.finished_at is not None
    assert done.finished_at >= job.created_at
    assert redis_db.hget(job_key(job.id), "error_type") == b"deadline"
    seen = run_async(redis_url, lambda jobs: jobs.read(job.id))
    assert seen is not None
    assert (seen.state, seen.error_type, seen.worker, seen.attempts) == (
        JobState.expired, ErrorKind.deadline, "w1", 1
    )  # fmt: skip
    assert redis_db.exists(input_key(job.id)) == 0  # the input goes when the job ends
    assert 0 < redis_db.ttl(job_key(job.id)) <= RESULT_TTL_S  # kept as long as a result
    assert run_async(redis_url, lambda jobs: jobs.read_result(job.id)) is None
    assert run_async(redis_url, lambda jobs: jobs.read_result(new_job_id())) is None


def test_a_result_is_kept_for_the_result_ttl(
    redis_url: str, redis_db: Redis, store: JobStore
) -> None:
    job = new_job()
    run_async(redis_url, lambda jobs: jobs.create(job, b"image"))
    assert store.claim(job.id, "w1", "run-1", time.time())
    assert store.finish(job, "run-1", JobState.succeeded, b"result", served_version=3)
    assert run_async(redis_url, lambda jobs: jobs.read_result(job.id)) == b"result"
    assert 0 < redis_db.ttl(result_key(job.id)) <= RESULT_TTL_S
    assert redis_db.exists(input_key(job.id)) == 0
    assert redis_db.zcard(RUNNING_JOBS_KEY) == 0


def test_canceling_ends_the_job_like_finishing(redis_url: str, redis_db: Redis) -> None:
    job = new_job()

    async def create_then_cancel(jobs: AsyncJobStore) -> bool:
        await jobs.create(job, b"image")
        return await jobs.transition(job.id, (JobState.queued,), JobState.canceled)

    assert run_async(redis_url, create_then_cancel)
    assert redis_db.exists(input_key(job.id)) == 0
    assert 0 < redis_db.ttl(job_key(job.id)) <= RESULT_TTL_S


def test_a_job_is_claimed_once_and_reported_once(
    redis_url: str, redis_db: Redis, store: JobStore
) -> None:
    """Two deliveries of one message: the second finds the job running and gets nothing;
    a claim retried after a lost reply is still the first run's."""
    job = new_job()
    run_async(redis_url, lambda jobs: jobs.create(job, b"image"))
    assert store.claim(job.id, "w1", "run-1", time.time())
    assert store.claim(job.id, "w1", "run-1", time.time())  # the same run, retried
    assert not store.claim(job.id, "w2", "run-2", time.time())  # a second delivery
    assert store.finish(job, "run-2", JobState.succeeded, b"second") is None
    assert store.finish(job, "run-1", JobState.succeeded, b"first") is not None
    assert not store.claim(job.id, "w2", "run-3", time.time())  # finished: never again
    assert redis_db.get(result_key(job.id)) == b"first"
    assert redis_db.hget(job_key(job.id), "attempts") == b"1"


def test_the_jobs_of_a_dead_worker_are_requeued_and_its_late_result_dropped(
    redis_url: str, redis_db: Redis, store: JobStore
) -> None:
    mine, other = new_job(), new_job()
    for job in (mine, other):
        run_async(redis_url, lambda jobs, job=job: jobs.create(job, b"image"))
    store.save_beat(WorkerBeat(worker="alive"), ttl_s=30)
    assert store.claim(mine.id, "dead", "run-1", time.time())
    assert store.claim(other.id, "alive", "run-2", time.time())

    (requeued,) = store.requeue_orphans()

    assert requeued.id == mine.id
    assert (requeued.state, requeued.worker, requeued.run_id, requeued.started_at) == (
        JobState.queued, None, None, None
    )  # fmt: skip
    assert store.requeue_orphans() == []  # once
    # the dead worker was only slow: what it finishes now is not reported
    assert store.finish(mine, "run-1", JobState.succeeded, b"late") is None
    assert redis_db.exists(result_key(mine.id)) == 0
    assert store.claim(mine.id, "alive", "run-3", time.time())  # the message sent again
    record = store.read(mine.id)
    assert record is not None
    assert (record.state, record.attempts) == (JobState.running, 2)
    still = store.read(other.id)
    assert still is not None
    assert (still.state, still.worker) == (JobState.running, "alive")
    assert redis_db.zcard(RUNNING_JOBS_KEY) == 2
    assert 0 < redis_db.ttl(RUNNING_JOBS_KEY) <= TTL_S


def test_a_job_queued_past_the_cutoff_is_handed_out_once_for_its_message_to_be_sent_again(
    redis_url: str, redis_db: Redis, store: JobStore
) -> None:
    # AGE_S, not milliseconds: a loaded CI machine can take tens of ms between two calls
    lost, claimed, canceled, fresh = new_job(), new_job(), new_job(), new_job()
    for job in (lost, claimed, canceled):
        run_async(redis_url, lambda jobs, job=job: jobs.create(job, b"image"))
    assert store.claim(claimed.id, "w", "run-1", time.time())
    assert store.transition(canceled.id, [JobState.queued], JobState.canceled)
    time.sleep(AGE_S + 0.1)
    run_async(redis_url, lambda jobs: jobs.create(fresh, b"image"))

    (stale,) = store.stale_queued(older_than_s=AGE_S)

    assert stale.id == lost.id  # not the claimed, the ended or the one queued just now
    assert store.stale_queued(older_than_s=AGE_S) == []  # marked as sent: once per cutoff
    assert set(redis_db.zrange(QUEUED_JOBS_KEY, 0, -1)) == {lost.id.encode(), fresh.id.encode()}
    assert 0 < redis_db.ttl(QUEUED_JOBS_KEY) <= TTL_S
    time.sleep(AGE_S + 0.1)
    assert {j.id for j in store.stale_queued(older_than_s=AGE_S)} == {lost.id, fresh.id}


def test_a_requeued_job_is_queued_again_and_claiming_takes_it_off_the_queued_set(
    redis_url: str, redis_db: Redis, store: JobStore
) -> None:
    job = new_job()
    run_async(redis_url, lambda jobs: jobs.create(job, b"image"))
    assert store.claim(job.id, "dead", "run-1", time.time())
    assert redis_db.zcard(QUEUED_JOBS_KEY) == 0

    assert len(store.requeue_orphans()) == 1  # were its message lost too, a sweep resends it

    assert redis_db.zscore(QUEUED_JOBS_KEY, job.id) is not None
    assert store.claim(job.id, "alive", "run-2", time.time())
    assert redis_db.zcard(QUEUED_JOBS_KEY) == 0


def served(version: int = 3) -> ServedModel:
    image = TensorSpec(height=8, width=8)
    manifest = Manifest(
        name="edges",
        version=version,
        task="sketch2photo",
        architecture="unet",
        recipe="pix2pix",
        input=image,
        output=image,
        files={"model.onnx": "0" * 64},
        metrics={"fid": 12.5},
    )
    return ServedModel.of(manifest, "onnx:CPUExecutionProvider", [1, version], {"2": "canary: x"})


def test_a_heartbeat_is_read_as_it_was_written(
    redis_url: str, redis_db: Redis, store: JobStore
) -> None:
    beat = WorkerBeat(
        worker="host-1",
        started_at=1.0,
        beat_at=2.0,
        queue="s2i.inference",
        models={"edges": served()},
        failed={"edges:2": "canary: x"},
    )
    store.save_beat(beat, ttl_s=5)

    assert store.beats() == [beat]
    assert run_async(redis_url, lambda jobs: jobs.beats()) == [beat]
    assert 0 < redis_db.pttl(worker_key("host-1")) <= 5000
    wire = json.loads(redis_db.get(worker_key("host-1")) or b"{}")
    assert set(wire) == {"worker", "started_at", "beat_at", "queue", "models", "failed"}
    model = wire["models"]["edges"]
    # the manifest's summary (no file hashes), plus what the worker adds
    assert model["version"] == 3
    assert model["metrics"] == {"fid": 12.5}
    assert model["output"]["height"] == 8
    assert "files" not in model
    assert model["available_versions"] == [1, 3]
    assert model["refused_versions"] == {"2": "canary: x"}
    assert model["backend"] == "onnx:CPUExecutionProvider"

    store.drop_beat("host-1")
    assert store.beats() == []


def test_beats_in_the_minimal_shape_parse_and_malformed_ones_are_skipped(
    redis_db: Redis, store: JobStore
) -> None:
    minimal = {
        "worker": "w",
        "models": {
            "m": {
                "name": "m",
                "version": 1,
                "task": "generate",
                "architecture": "dcgan",
                "recipe": "dcgan",
                "input": {"kind": "noise", "z_dim": 8, "class_names": ["cat"]},
            }
        },
    }
    redis_db.set(worker_key("w"), json.dumps(minimal))
    redis_db.set(worker_key("broken"), b"{not json")
    redis_db.set(worker_key("wrong"), json.dumps({"models": []}))

    (beat,) = store.beats()
    assert beat.worker == "w"
    assert beat.models["m"].input.class_names == ["cat"]
    assert beat.models["m"].available_versions == []

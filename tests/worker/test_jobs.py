"""A job runs on one model version from decoding to the version it reports, even when a
reload lands while it decodes (real Redis, real ONNX Runtime, the worker's own runtime)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PIL import Image
from redis import Redis

from services.worker.jobs import run_job
from services.worker.runtime import WorkerRuntime
from shared.jobs import JobRecord, JobState
from shared.registry import Registry
from shared.settings import Settings
from tests.helpers import publish_tiny, store_job

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py

NAME = "edges"
T = TypeVar("T")


class ReloadDuringDecode(ThreadPoolExecutor):
    """The worker's decode pool, running ``reload`` right after each decode finishes: the
    moment a reload would mix versions (a job shaped for one, run on the next)."""

    def __init__(self, reload: Callable[[], None]) -> None:
        super().__init__(1, thread_name_prefix="decode")
        self.reload = reload

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        def decode_then_reload() -> T:
            decoded = fn(*args, **kwargs)
            self.reload()
            return decoded

        return super().submit(decode_then_reload)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "models")
    publish_tiny(registry, NAME, tmp_path, seed=1, size=8)  # v1: 8x8, served
    publish_tiny(registry, NAME, tmp_path, seed=2, size=16, make_current=False)  # v2: 16x16
    return registry


@pytest.fixture
def runtime(redis_url: str, redis_db: Redis, registry: Registry) -> Iterator[WorkerRuntime]:
    settings = Settings(
        redis_url=redis_url,
        model_root=registry.root,
        device="cpu",
        intra_op_threads=1,
        max_queue_delay_ms=1,
        reload_interval_s=3600,  # reloads only when the test says
    )
    rt = WorkerRuntime(settings)
    rt.start()
    yield rt
    rt.close()


def result(rt: WorkerRuntime, job_id: str) -> tuple[JobRecord, Image.Image]:
    job = rt.jobs.read(job_id)
    assert job is not None
    payload = rt.redis.get(f"s2i:result:{job_id}")
    assert isinstance(payload, bytes), job
    return job, Image.open(io.BytesIO(payload))


def test_a_reload_while_a_job_decodes_does_not_change_its_version(
    redis_url: str, registry: Registry, runtime: WorkerRuntime
) -> None:
    def reload_to_v2() -> None:
        registry.set_current(NAME, 2)
        runtime.pool.poll_once()  # v2 now served; v1's batcher retired

    runtime.decoder = reloading = ReloadDuringDecode(reload_to_v2)
    during = store_job(redis_url, NAME)

    assert run_job(runtime, during) is JobState.succeeded
    reloading.shutdown()
    job, image = result(runtime, during)
    assert (job.served_version, image.size) == (1, (8, 8))  # ran on, and reports, v1
    assert runtime.pool.get(NAME).manifest.version == 2

    runtime.decoder = ThreadPoolExecutor(1)
    pinned, after = store_job(redis_url, NAME, version=1), store_job(redis_url, NAME)
    assert run_job(runtime, pinned) is JobState.succeeded
    assert run_job(runtime, after) is JobState.succeeded
    assert result(runtime, pinned)[1].tobytes() == image.tobytes()  # v1's very output
    job, image = result(runtime, after)
    assert (job.served_version, image.size) == (2, (16, 16))

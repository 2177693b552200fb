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
from shared import fitted_input
from shared.jobs import JobRecord, JobState
from shared.registry import Registry
from shared.settings import Settings
from tests.helpers import publish_tiny, store_job
from tests.images import sketch_png

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


def test_pixels_the_api_fitted_give_the_answer_the_upload_gives(
    redis_url: str, registry: Registry, runtime: WorkerRuntime
) -> None:
    """Decode once (``shared.fitted_input``): the stored pixels, fitted for the served version,
    run as the upload would; fitted for another version's size, they are fitted again."""
    upload = sketch_png(1, size=32)
    v1 = runtime.pool.get(NAME).manifest.input
    pixels = fitted_input.pack(Image.open(io.BytesIO(upload)).convert("RGB"), v1)
    from_upload = store_job(redis_url, NAME, upload)
    from_pixels = store_job(redis_url, NAME, pixels, input_width=32, input_height=32)

    assert run_job(runtime, from_upload) is JobState.succeeded
    assert run_job(runtime, from_pixels) is JobState.succeeded
    assert result(runtime, from_pixels)[1].tobytes() == result(runtime, from_upload)[1].tobytes()

    registry.set_current(NAME, 2)  # 16x16: the API fitted for v1, then the worker reloaded
    runtime.pool.poll_once()
    stale = store_job(redis_url, NAME, pixels, input_width=32, input_height=32, output_size="input")
    assert run_job(runtime, stale) is JobState.succeeded
    job, image = result(runtime, stale)
    assert (job.served_version, image.size) == (2, (32, 32))  # v2, at the upload's size

"""Variations of one sketch from a model with noise (SketchyGAN): n seeded noise vectors, one
grid; the same seed, the same bytes (real Redis, real ONNX Runtime, the worker's runtime)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from redis import Redis

from services.worker.jobs import run_job
from services.worker.runtime import WorkerRuntime
from shared.errors import ErrorKind
from shared.jobs import JobRecord, JobState
from shared.registry import Registry
from shared.settings import Settings
from tests.helpers import publish_tiny, publish_tiny_sketchy, store_job

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py

NOISY, PLAIN = "sketchy", "edges"
SIZE = 16


@pytest.fixture
def runtime(redis_url: str, redis_db: Redis, tmp_path: Path) -> Iterator[WorkerRuntime]:
    registry = Registry(tmp_path / "models")
    publish_tiny_sketchy(registry, NOISY, tmp_path, size=SIZE)
    publish_tiny(registry, PLAIN, tmp_path, seed=1, size=8)
    settings = Settings(
        redis_url=redis_url,
        model_root=registry.root,
        device="cpu",
        intra_op_threads=1,
        max_queue_delay_ms=1,
        reload_interval_s=3600,
    )
    rt = WorkerRuntime(settings)
    rt.start()
    yield rt
    rt.close()


def run(rt: WorkerRuntime, redis_url: str, model: str = NOISY, **fields: Any) -> JobRecord:
    """Store a job as the API does, run it; its final record."""
    job_id = store_job(redis_url, model, **fields)
    run_job(rt, job_id)
    done = rt.jobs.read(job_id)
    assert done is not None
    return done


def png(rt: WorkerRuntime, job: JobRecord) -> bytes:
    assert job.state is JobState.succeeded, job
    payload = rt.redis.get(f"s2i:result:{job.id}")
    assert isinstance(payload, bytes)
    return payload


def tiles(payload: bytes, side: int, per_row: int) -> list[np.ndarray]:
    """The tiles of a grid of ``side`` px tiles with 2 px gutters, row by row."""
    sheet = np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))
    assert sheet.shape[:2] == (per_row * (side + 2) - 2,) * 2
    step = side + 2
    return [
        sheet[r * step : r * step + side, c * step : c * step + side]
        for r in range(per_row)
        for c in range(per_row)
    ]


def test_same_seed_same_grid_of_distinct_tiles_other_seed_other_grid(
    runtime: WorkerRuntime, redis_url: str
) -> None:
    first = png(runtime, run(runtime, redis_url, n=4, seed=7))
    again = png(runtime, run(runtime, redis_url, n=4, seed=7))
    other = png(runtime, run(runtime, redis_url, n=4, seed=8))
    assert first == again
    assert first != other
    four = tiles(first, SIZE, 2)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(four[i], four[j]), (i, j)
    # one seeded variation is the first tile of the grid of that seed
    single = png(runtime, run(runtime, redis_url, n=1, seed=7))
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(single))), four[0])


def test_without_a_seed_one_image_at_the_noise_mean(runtime: WorkerRuntime, redis_url: str) -> None:
    mean = png(runtime, run(runtime, redis_url))
    assert Image.open(io.BytesIO(mean)).size == (SIZE, SIZE)
    assert png(runtime, run(runtime, redis_url)) == mean
    assert png(runtime, run(runtime, redis_url, n=1, seed=7)) != mean


def test_sizes_apply_to_each_tile(runtime: WorkerRuntime, redis_url: str) -> None:
    full = png(runtime, run(runtime, redis_url, n=4, seed=1, output_size="input", input_width=32,
                            input_height=32))  # fmt: skip
    assert Image.open(io.BytesIO(full)).size == (2 * 32 + 2, 2 * 32 + 2)
    aspect = png(runtime, run(runtime, redis_url, n=2, seed=1, keep_aspect=True))
    assert Image.open(io.BytesIO(aspect)).size == (2 * SIZE + 2, SIZE)


@pytest.mark.parametrize("fields", [{"n": 2, "seed": 1}, {"seed": 1}, {"n": 3}])
def test_a_model_without_noise_refuses_variations_and_seeds(
    runtime: WorkerRuntime, redis_url: str, fields: dict[str, Any]
) -> None:
    job = run(runtime, redis_url, model=PLAIN, **fields)
    assert job.state is JobState.failed
    assert job.error_type is ErrorKind.invalid_condition
    assert job.error_detail is not None
    assert "takes no noise" in job.error_detail

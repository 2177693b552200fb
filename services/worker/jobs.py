"""Running one job: Redis record -> decoded tensor -> batcher -> encoded result -> Redis.

Kept apart from Celery so tests and benchmarks can run jobs directly. A job ends in exactly
one final state, its event is always published, and no exception escapes to Celery (a
crash would redeliver the message forever).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np
from PIL import Image

from services.worker.batcher import BatcherClosed, BatchResult
from services.worker.runtime import WorkerRuntime
from shared import cluster_metrics as cm
from shared import images
from shared.jobs import (
    EVENTS_CHANNEL,
    TRANSITION_SCRIPT,
    JobRecord,
    JobState,
    input_key,
    job_key,
    result_key,
    transition_args,
)
from shared.model_input import ConditionError, model_input
from shared.registry import RegistryError

log = logging.getLogger(__name__)


class JobFailure(Exception):
    def __init__(self, error_type: str, detail: str) -> None:
        super().__init__(detail)
        self.error_type = error_type
        self.detail = detail


def _load(rt: WorkerRuntime, job_id: str) -> JobRecord | None:
    raw = rt.redis.hgetall(job_key(job_id))
    return JobRecord.from_redis(raw) if raw else None


def _finish(rt: WorkerRuntime, job: JobRecord, state: JobState, **fields: Any) -> None:
    now = time.time()
    update = {"state": state, "finished_at": now, **fields}
    job = job.model_copy(update=update)
    pipe = rt.redis.pipeline()
    pipe.hset(job_key(job.id), mapping=job.to_redis())
    pipe.publish(EVENTS_CHANNEL, job.id)
    pipe.execute()
    rt.metrics.inc(cm.JOBS, {"model": job.model, "state": state.value})
    if state is JobState.succeeded:
        rt.metrics.observe(cm.JOB_SECONDS, {"model": job.model}, [now - job.created_at])


def _submit(rt: WorkerRuntime, job: JobRecord, examples: list[np.ndarray]) -> list[BatchResult]:
    """Hand examples to the model's batcher; a reload swap between get and submit retries."""
    for _ in range(3):
        model = rt.pool.get(job.model, job.version)
        try:
            futures = [model.batcher.submit(x) for x in examples]
        except BatcherClosed:
            continue
        timeout = max(job.deadline - time.time(), 0.1) if job.deadline else None
        try:
            return [f.result(timeout=timeout) for f in futures]
        except FutureTimeout as exc:
            raise JobFailure("deadline", "deadline passed while the job was running") from exc
    raise JobFailure("internal", "model was reloaded repeatedly while submitting")


def _check_finite(rt: WorkerRuntime, job: JobRecord, results: list[BatchResult]) -> None:
    """A NaN or infinite output fails the job (never served as a flat grey image)."""
    if all(np.isfinite(r.output).all() for r in results):
        return
    rt.metrics.inc(cm.NON_FINITE, {"model": job.model})
    raise JobFailure(
        "invalid_output",
        f"model {job.model} gave a non-finite (NaN or infinite) output for this input",
    )


def _translate(rt: WorkerRuntime, job: JobRecord) -> tuple[Image.Image, int, list[BatchResult]]:
    data = rt.redis.get(input_key(job.id))
    if not isinstance(data, bytes):
        raise JobFailure("input_expired", "the input image expired before the job ran")
    model = rt.pool.get(job.model, job.version)
    spec = model.manifest.input
    s = rt.settings

    def decode() -> tuple[np.ndarray, tuple[int, int]]:
        # JPEGs decode at a reduced scale (DCT scaling) when still >= the model's size
        img, info = images.decode_with_info(
            data,
            max_bytes=s.max_upload_bytes,
            max_pixels=s.max_image_pixels,
            draft_size=max(spec.width, spec.height),
        )
        try:
            return model_input(img, spec, job.condition), info.display_size
        except ConditionError as exc:
            raise JobFailure("invalid_condition", str(exc)) from None

    array, size = rt.decoder.submit(decode).result()  # (C, H, W) in [-1, 1]
    results = _submit(rt, job, [array])
    _check_finite(rt, job, results)
    out = images.from_array(results[0].output)
    if job.output_size == "input":
        out = images.restore_aspect(out, capped(size, s.max_output_pixels), fit=spec.fit,
                                    scale_to_original=True)  # fmt: skip
    elif job.keep_aspect:
        out = images.restore_aspect(out, size, fit=spec.fit)
    return out, model.manifest.version, results


def capped(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """``size`` scaled down, keeping its aspect ratio, to at most ``max_pixels`` pixels."""
    w, h = size
    if w * h <= max_pixels:
        return size
    scale = (max_pixels / (w * h)) ** 0.5
    return max(1, int(w * scale)), max(1, int(h * scale))


def _generate(rt: WorkerRuntime, job: JobRecord) -> tuple[Image.Image, int, list[BatchResult]]:
    model = rt.pool.get(job.model, job.version)
    spec = model.manifest.input
    rng = np.random.default_rng(job.seed)
    z = rng.standard_normal((job.n, spec.z_dim)).astype(np.float32)  # (n, z_dim)
    if spec.num_classes:
        labels = np.zeros((job.n, spec.num_classes), np.float32)  # (n, classes) one-hot
        if job.class_name is not None:
            cls = np.full(job.n, spec.class_names.index(job.class_name))
        else:
            cls = rng.integers(0, spec.num_classes, job.n)
        labels[np.arange(job.n), cls] = 1.0
        z = np.concatenate([z, labels], axis=1)
    results = _submit(rt, job, list(z))
    _check_finite(rt, job, results)
    tiles = [images.from_array(r.output) for r in results]
    return grid(tiles), model.manifest.version, results


def grid(tiles: list[Image.Image]) -> Image.Image:
    """Tiles in a near-square grid (one tile: itself), 2 px white gutters."""
    if len(tiles) == 1:
        return tiles[0]
    cols = int(np.ceil(np.sqrt(len(tiles))))
    rows = int(np.ceil(len(tiles) / cols))
    w, h = tiles[0].size
    sheet = Image.new("RGB", (cols * (w + 2) - 2, rows * (h + 2) - 2), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % cols) * (w + 2), (i // cols) * (h + 2)))
    return sheet


def run_job(rt: WorkerRuntime, job_id: str) -> JobState | None:
    job = _load(rt, job_id)
    if job is None:
        log.warning("job %s has expired or never existed; dropped", job_id)
        return None
    if job.state.final:
        return job.state  # canceled while queued, or a redelivered finished job
    if job.past_deadline():
        _finish(
            rt,
            job,
            JobState.expired,
            error_type="deadline",
            error_detail="the job's deadline passed before a worker could run it",
        )
        return JobState.expired
    started = time.time()
    # "running" too: a message redelivered because its worker died restarts the job
    args = transition_args(
        (JobState.queued, JobState.running), {"state": JobState.running, "started_at": started}
    )
    if rt.redis.eval(TRANSITION_SCRIPT, 1, job_key(job.id), *args) != 1:
        return None  # canceled in the meantime
    try:
        work = _generate if job.kind == "generate" else _translate
        image, version, results = work(rt, job)
        payload = images.encode(image, job.format)
        rt.redis.set(result_key(job.id), payload, ex=rt.settings.job_ttl_s)
        last = results[-1]
        _finish(
            rt,
            job,
            JobState.succeeded,
            started_at=started,
            served_version=version,
            queue_ms=round((started - job.created_at) * 1000 + last.queue_ms, 2),
            compute_ms=round(last.compute_ms, 2),
            batch_size=last.batch_size,
            media_type=images.MEDIA_TYPES[job.format],
        )
        return JobState.succeeded
    except JobFailure as exc:
        state = JobState.expired if exc.error_type == "deadline" else JobState.failed
        _finish(rt, job, state, error_type=exc.error_type, error_detail=exc.detail)
        return state
    except images.ImageError as exc:
        _finish(rt, job, JobState.failed, error_type=exc.kind, error_detail=exc.detail)
        return JobState.failed
    except RegistryError as exc:
        _finish(rt, job, JobState.failed, error_type="model_not_found", error_detail=str(exc))
        return JobState.failed
    except Exception as exc:
        log.exception("job %s failed", job.id)
        _finish(
            rt, job, JobState.failed, error_type="internal", error_detail=f"{type(exc).__name__}"
        )
        return JobState.failed

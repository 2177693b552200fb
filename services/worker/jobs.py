"""Running one job: Redis record -> decoded tensor -> batcher -> encoded result -> Redis.

Kept apart from Celery so tests and benchmarks can run jobs directly. A job is claimed under
a fresh run id (a second delivery of its message finds it running and is dropped), runs on
one model version from decoding to the result it reports, and ends in exactly one final
state, written only by the run that claimed it. No exception escapes to Celery (a crash
would redeliver the message forever).
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np
from PIL import Image

from services.worker.batcher import BatcherClosed, BatchResult, ShapeError
from services.worker.model_pool import LoadedModel
from services.worker.runtime import WorkerRuntime
from shared import cluster_metrics as cm
from shared import fitted_input, images
from shared.errors import ErrorKind
from shared.jobs import JobRecord, JobState
from shared.latents import generate_latents
from shared.model_input import ConditionError, model_inputs, noise_vectors
from shared.registry import RegistryError

log = logging.getLogger(__name__)


class JobFailure(Exception):
    def __init__(self, error_type: ErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.error_type = error_type
        self.detail = detail


def _finish(
    rt: WorkerRuntime,
    job: JobRecord,
    run_id: str,
    state: JobState,
    result: bytes | None = None,
    **fields: Any,
) -> None:
    done = rt.jobs.finish(job, run_id, state, result, **fields)
    if done is None:
        log.warning("job %s is no longer this run's (requeued or expired); outcome dropped", job.id)
        return
    rt.metrics.inc(cm.JOBS, {"model": job.model, "state": state.value})
    if state is JobState.succeeded and done.finished_at is not None:
        rt.metrics.observe(
            cm.JOB_SECONDS, {"model": job.model}, [done.finished_at - job.created_at]
        )


def _submit(
    rt: WorkerRuntime, job: JobRecord, model: LoadedModel, examples: list[np.ndarray]
) -> list[BatchResult]:
    """Run ``examples`` on ``model``'s version, the one they were shaped for: when a reload
    retired its batcher meanwhile, on that version loaded again, never on another."""
    for _ in range(3):
        try:
            futures = [model.batcher.submit(x) for x in examples]
        except BatcherClosed:
            model = rt.pool.get(job.model, model.manifest.version)
            continue
        except ShapeError as exc:
            raise JobFailure(ErrorKind.internal, str(exc)) from None
        timeout = max(job.deadline - time.time(), 0.1) if job.deadline else None
        try:
            return [f.result(timeout=timeout) for f in futures]
        except FutureTimeout as exc:
            raise JobFailure(
                ErrorKind.deadline, "deadline passed while the job was running"
            ) from exc
    raise JobFailure(ErrorKind.internal, "model was reloaded repeatedly while submitting")


def _check_finite(rt: WorkerRuntime, job: JobRecord, results: list[BatchResult]) -> None:
    """A NaN or infinite output fails the job (never served as a flat grey image)."""
    if all(np.isfinite(r.output).all() for r in results):
        return
    rt.metrics.inc(cm.NON_FINITE, {"model": job.model})
    raise JobFailure(
        ErrorKind.invalid_output,
        f"model {job.model} gave a non-finite (NaN or infinite) output for this input",
    )


def _translate(rt: WorkerRuntime, job: JobRecord) -> tuple[Image.Image, int, list[BatchResult]]:
    """The model's output for the job's image; for a model with noise asked for a seed or
    n > 1, a grid of the n outputs for the seeded noise vectors (no seed, n = 1: z = 0)."""
    data = rt.jobs.read_input(job.id)
    if data is None:
        raise JobFailure(ErrorKind.input_expired, "the input image expired before the job ran")
    model = rt.pool.get(job.model, job.version)
    spec = model.manifest.input
    s = rt.settings
    noises = None  # one input: the model's own, z = 0 for a model with noise
    if job.seed is not None or job.n > 1:
        if not spec.noise_dim:
            raise JobFailure(
                ErrorKind.invalid_condition,
                f"model {job.model} v{model.manifest.version} takes no noise: n must be 1, "
                "without a seed",
            )
        noises = noise_vectors(job.seed, job.n, spec.noise_dim)  # (n, noise_dim)

    def decode() -> Image.Image:
        # JPEGs decode at a reduced scale (DCT scaling) when still >= the model's size
        return images.decode(
            data,
            max_bytes=s.max_upload_bytes,
            max_pixels=s.max_image_pixels,
            draft_size=max(spec.width, spec.height),
        )

    # the API stores the pixels already fitted to the model where it can (no decode here)
    img = fitted_input.unpack(data)
    if img is None:  # the upload as sent
        img = rt.decoder.submit(decode).result()
    try:
        examples = model_inputs(img, spec, job.condition, noises)  # n x (C, H, W) in [-1, 1]
    except ConditionError as exc:
        raise JobFailure(ErrorKind.invalid_condition, str(exc)) from None
    # the upload's size, upright (as the API read it; a record without it: what was decoded)
    size = (job.input_width, job.input_height) if job.input_width else img.size
    results = _submit(rt, job, model, examples)
    _check_finite(rt, job, results)
    tiles = [images.from_array(r.output) for r in results]
    if job.output_size == "input":  # the n tiles together within S2I_MAX_OUTPUT_PIXELS
        tile_size = capped(size, s.max_output_pixels // len(tiles))
        tiles = [images.restore_aspect(t, tile_size, fit=spec.fit, scale_to_original=True)
                 for t in tiles]  # fmt: skip
    elif job.keep_aspect:
        tiles = [images.restore_aspect(t, size, fit=spec.fit) for t in tiles]
    return grid(tiles), model.manifest.version, results


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
    z = generate_latents(spec, job.n, job.seed, job.class_name)  # (n, z_dim + classes)
    results = _submit(rt, job, model, list(z))
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
    """Run the job (once: None when it is not this delivery's to run)."""
    job = rt.jobs.read(job_id)
    if job is None:
        log.warning("job %s has expired or never existed; dropped", job_id)
        return None
    if job.state.final:
        return job.state  # canceled while queued, or a redelivered finished job
    if job.past_deadline():
        expired = rt.jobs.transition(
            job.id,
            (JobState.queued,),
            JobState.expired,
            finished_at=time.time(),
            error_type=ErrorKind.deadline,
            error_detail="the job's deadline passed before a worker could run it",
        )
        if expired:
            rt.metrics.inc(cm.JOBS, {"model": job.model, "state": JobState.expired.value})
        return JobState.expired if expired else None
    run_id = uuid.uuid4().hex
    started = time.time()
    if not rt.jobs.claim(job.id, rt.worker_id, run_id, started):
        return None  # canceled meanwhile, or running elsewhere (this message came twice)
    try:
        work = _generate if job.kind == "generate" else _translate
        image, version, results = work(rt, job)
        payload = images.encode(image, job.format)
        last = results[-1]
        _finish(
            rt,
            job,
            run_id,
            JobState.succeeded,
            payload,
            served_version=version,
            queue_ms=round((started - job.created_at) * 1000 + last.queue_ms, 2),
            compute_ms=round(last.compute_ms, 2),
            batch_size=last.batch_size,
            media_type=images.MEDIA_TYPES[job.format],
        )
        return JobState.succeeded
    except JobFailure as exc:
        state = JobState.expired if exc.error_type is ErrorKind.deadline else JobState.failed
        _finish(rt, job, run_id, state, error_type=exc.error_type, error_detail=exc.detail)
        return state
    except images.ImageError as exc:
        _finish(rt, job, run_id, JobState.failed, error_type=exc.kind, error_detail=exc.detail)
        return JobState.failed
    except RegistryError as exc:
        _finish(
            rt,
            job,
            run_id,
            JobState.failed,
            error_type=ErrorKind.model_not_found,
            error_detail=str(exc),
        )
        return JobState.failed
    except Exception as exc:
        log.exception("job %s failed", job.id)
        _finish(
            rt,
            job,
            run_id,
            JobState.failed,
            error_type=ErrorKind.internal,
            error_detail=f"{type(exc).__name__}",
        )
        return JobState.failed

"""Turning a validated request into a job, and a finished job into a response.

The path every job takes: check that some worker serves the model (else 404/503), that
the queue has room (else 429), apply the Idempotency-Key, store the record and the input
in Redis with a TTL together with the Celery message that carries the job id only (one
transaction), then either answer 202 (async) or wait for the job's final state until its
deadline (sync).
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from typing import Any, NamedTuple

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from services.api import problem_kinds as kinds
from services.api.deps import AppState
from services.api.idempotency import caller_scope, claim
from services.api.problems import Problem, unavailable
from services.api.schemas import SEED_LIMIT, JobStatus, TranslateResult
from shared.errors import ErrorKind
from shared.jobs import JobRecord, JobState, task_name
from shared.task_messages import task_message

log = logging.getLogger(__name__)

# The OpenAPI description of what job_headers() and result_response() send
_BINARY = {"schema": {"type": "string", "format": "binary"}}
RESULT_CONTENT: dict[str, Any] = {
    # the image (the answer unless the client asks for JSON) comes first, with a binary
    # schema; application/octet-stream is for generators that know no image/* type
    # (openapi-python-client models the first type it knows, and sends Accept: */*)
    "image/png": _BINARY,
    "image/jpeg": _BINARY,
    "image/webp": _BINARY,
    "application/octet-stream": _BINARY,
    "application/json": {"schema": {"$ref": "#/components/schemas/TranslateResult"}},
}
RESULT_DESCRIPTION = (
    "The result image, in the requested `format` (`Content-Type` names it). "
    "`Accept: application/json` (without image types) gives JSON with the image in base64 "
    "instead; `Accept: application/octet-stream` the same bytes as `application/octet-stream`."
)


def _header(description: str, type_: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": type_}}


JOB_HEADERS: dict[str, dict[str, Any]] = {
    "X-Job-Id": _header("The job's id: `GET /v1/jobs/{id}`"),
    "X-Model": _header("The model that ran it (for `model=auto`: the one it chose)"),
    "X-Model-Version": _header("The version that ran it (or was pinned)", "integer"),
    "X-Queue-Ms": _header("Milliseconds from submission to the start of the run", "number"),
    "X-Compute-Ms": _header("Milliseconds the model ran", "number"),
}
ROUTED_BY_HEADER = {
    "X-Routed-By": _header("`model=auto` only: why it chose the model, e.g. `auto: drawing (0.93)`")
}
SEED_HEADER = {
    "X-Seed": _header(
        "Generate jobs, and translations by a model with noise asked for a `seed` or `n` > 1: "
        "the seed they ran with (the request's, or the random one the API picked); send it "
        "as `seed` to get the same images again",
        "integer",
    )
}


def random_seed() -> int:
    """A seed in [0, SEED_LIMIT) for a request that asked for random images without one."""
    return secrets.randbelow(SEED_LIMIT)


def wants_async(request: Request, query_async: bool) -> bool:
    prefer = request.headers.get("prefer", "").lower()
    return query_async or "respond-async" in prefer


def deadline_for(state: AppState, request: Request, timeout: float | None) -> float:
    header = request.headers.get("x-request-timeout")
    if timeout is None and header is not None:
        try:
            timeout = float(header)
        except ValueError:
            raise Problem.invalid_field(
                "header.x-request-timeout",
                f"X-Request-Timeout must be a number of seconds, got {header!r}",
            ) from None
    s = state.settings
    if timeout is not None and not 0 < timeout <= s.max_timeout_s:
        raise Problem.invalid_field(
            "timeout", f"timeout must be in (0, {s.max_timeout_s}] seconds, got {timeout}"
        )
    return time.time() + (timeout or s.default_timeout_s)


async def check_model(state: AppState, model: str, version: int | None) -> None:
    """404 for a model or version no worker has; 503 when no worker is alive at all."""
    view = await state.cluster.get()
    if model not in view.models or (version is not None and version not in view.versions(model)):
        view = await state.cluster.get(fresh=True)  # a worker may have just loaded it
    retry = state.settings.retry_after_s
    if not view.workers:
        raise unavailable("no inference worker is running; start one or wait for it", retry)
    if model not in view.models:
        known = ", ".join(sorted(view.models)) or "none"
        raise Problem(kinds.UNKNOWN_MODEL, f"unknown model {model!r}; served: {known}")
    if version is not None and version not in view.versions(model):
        have = ", ".join(str(v) for v in sorted(view.versions(model)))
        raise Problem(
            kinds.UNKNOWN_MODEL, f"model {model!r} has no version {version}; versions: {have}"
        )


async def check_queue(state: AppState) -> None:
    s = state.settings
    length = await state.redis.llen(s.inference_queue)
    if length >= s.max_queue_length:
        raise Problem(
            kinds.QUEUE_FULL,
            f"{length} jobs are waiting (limit {s.max_queue_length}); retry later",
            headers={"Retry-After": str(s.retry_after_s)},
        )


class JobInput(NamedTuple):
    """A translation's input: the upload as sent (an Idempotency-Key's fingerprint hashes it)
    and what the worker reads (the upload, or its pixels fitted to the model:
    ``shared.fitted_input``)."""

    upload: bytes
    stored: bytes


async def enqueue(
    state: AppState,
    job: JobRecord,
    job_input: JobInput | None,
    idem_key: str | None,
    caller: str = "anonymous",
) -> tuple[JobRecord, bool]:
    """Store and enqueue ``job``; with a known Idempotency-Key return the earlier job.

    The record, the input and the Celery message go to Redis in one transaction
    (``shared.task_messages``): a request that fails here leaves neither a job nor a message.
    """
    if idem_key:
        upload = None if job_input is None else job_input.upload
        earlier = await claim(state, job, upload, idem_key, caller)
        if earlier is not None:
            return earlier, False
    message = task_message(task_name(job.kind), [job.id], state.settings.inference_queue)
    await state.jobs.create(job, None if job_input is None else job_input.stored, message)
    return job, True


def job_headers(job: JobRecord) -> dict[str, str]:
    headers = {"X-Job-Id": job.id, "X-Model": job.model}
    version = job.served_version or job.version
    if version is not None:
        headers["X-Model-Version"] = str(version)
    if job.queue_ms is not None:
        headers["X-Queue-Ms"] = f"{job.queue_ms:.1f}"
    if job.compute_ms is not None:
        headers["X-Compute-Ms"] = f"{job.compute_ms:.1f}"
    if job.routed_by:
        headers["X-Routed-By"] = job.routed_by
    if job.seed is not None:
        headers["X-Seed"] = str(job.seed)
    return headers


def accepted(job: JobRecord) -> JSONResponse:
    headers = job_headers(job)
    headers["Location"] = f"/v1/jobs/{job.id}"
    return JSONResponse(JobStatus.of(job).model_dump(mode="json"), status_code=202, headers=headers)


def failure(job: JobRecord) -> Problem:
    headers = job_headers(job)
    if job.state is JobState.canceled:
        return Problem(kinds.JOB_CANCELED, "the job was canceled", headers=headers, job_id=job.id)
    kind = job.error_type or ErrorKind.internal
    if job.state is JobState.expired:
        kind = ErrorKind.deadline
    problem = Problem.from_failure(kind, job.error_detail or "the job failed", job_id=job.id)
    problem.headers.update(headers)
    return problem


async def result_response(
    state: AppState, request: Request, job: JobRecord, *, take: bool = False
) -> Response:
    """The finished job's image (or JSON with base64 when the client accepts JSON only);
    ``take``: the result is deleted as it is read."""
    if job.state is not JobState.succeeded:
        raise failure(job)
    payload = await state.jobs.read_result(job.id, take=take)
    if payload is None:
        raise Problem(
            kinds.RESULT_EXPIRED,
            f"results are kept {state.settings.result_ttl_s} s (S2I_RESULT_TTL_S)",
            job_id=job.id,
        )
    media_type = job.media_type or "application/octet-stream"
    headers = job_headers(job)
    accept = request.headers.get("accept", "")
    if "application/json" in accept and "image/" not in accept:
        body = TranslateResult(
            job=JobStatus.of(job),
            media_type=media_type,
            image=base64.b64encode(payload).decode(),
        )
        return JSONResponse(body.model_dump(mode="json"), headers=headers)
    if "application/octet-stream" in accept and "image/" not in accept and "*/*" not in accept:
        media_type = "application/octet-stream"
    return Response(payload, media_type=media_type, headers=headers)


async def run(
    state: AppState, request: Request, job: JobRecord, job_input: JobInput | None, *, is_async: bool
) -> Response:
    await check_model(state, job.model, job.version)
    await check_queue(state)
    idem_key = request.headers.get("idempotency-key")
    job, _ = await enqueue(state, job, job_input, idem_key, caller_scope(request))
    if is_async:
        return accepted(job)
    final = await state.waiter.wait(job.id, until=job.deadline)
    if final is None:
        raise Problem(kinds.JOB_EXPIRED, "the job is gone")
    if not final.state.final:
        raise Problem(
            kinds.DEADLINE_EXCEEDED,
            f"the job did not finish in time; it is {final.state.value} and will not run "
            "past its deadline",
            headers=job_headers(final),
            job_id=final.id,
        )
    # a synchronous answer is the only delivery, unless an Idempotency-Key may ask again
    return await result_response(state, request, final, take=idem_key is None)

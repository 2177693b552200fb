"""``GET /v1/jobs/{id}``, ``GET /v1/jobs/{id}/result``, ``DELETE /v1/jobs/{id}``."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from services.api import submit
from services.api.deps import ApiKeyDep, AppState, StateDep
from services.api.problems import PROBLEM_MEDIA_TYPE, Problem
from services.api.schemas import JobStatus
from services.api.waiter import read_job
from shared.jobs import (
    EVENTS_CHANNEL,
    TRANSITION_SCRIPT,
    JobRecord,
    JobState,
    job_key,
    transition_args,
)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[ApiKeyDep])

JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The id from X-Job-Id")]


async def load_job(state: AppState, job_id: str) -> JobRecord:
    job = await read_job(state.redis, job_id)
    if job is None:
        raise Problem(
            404,
            "unknown-job",
            "Unknown job",
            f"no job {job_id}: it never existed or expired after {state.settings.job_ttl_s} s",
        )
    return job


@router.get("/{job_id}", summary="A job's state and timings")
async def get_job(job_id: JobId, state: StateDep) -> JobStatus:
    return JobStatus.of(await load_job(state, job_id))


@router.get(
    "/{job_id}/result",
    summary="A finished job's image",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
        409: {"description": "Not finished yet (see Retry-After)"},
    },
)
async def get_result(job_id: JobId, state: StateDep, request: Request) -> Response:
    job = await load_job(state, job_id)
    if not job.state.final:
        raise Problem(
            409,
            "job-not-finished",
            "The job has not finished",
            f"the job is {job.state.value}; poll /v1/jobs/{job_id}",
            headers={"Retry-After": "1"},
            job_id=job_id,
        )
    return await submit.result_response(state, request, job)


@router.delete(
    "/{job_id}",
    summary="Cancel a queued job",
    responses={
        409: {
            "description": "Already running (it cannot be stopped midway) or already finished",
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
    },
)
async def cancel_job(job_id: JobId, state: StateDep) -> JobStatus:
    job = await load_job(state, job_id)
    args = transition_args(
        (JobState.queued,), {"state": JobState.canceled, "finished_at": time.time()}
    )
    result = await state.redis.eval(TRANSITION_SCRIPT, 1, job_key(job_id), *args)
    if result == 1:
        await state.redis.publish(EVENTS_CHANNEL, job_id)
    job = await load_job(state, job_id)
    if job.state is JobState.running:
        raise Problem(
            409,
            "job-running",
            "The job is already running",
            "a running job finishes within its deadline; it cannot be canceled",
        )
    if job.state.final and job.state is not JobState.canceled:
        raise Problem(
            409,
            "job-finished",
            "The job already finished",
            f"job {job_id} already {job.state}; nothing to cancel",
        )
    return JobStatus.of(job)

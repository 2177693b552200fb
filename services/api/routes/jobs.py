"""``GET /v1/jobs/{id}``, ``GET /v1/jobs/{id}/result``, ``DELETE /v1/jobs/{id}``."""

from __future__ import annotations

import re
import time
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from services.api import problem_kinds as kinds
from services.api import submit
from services.api.deps import ApiKeyDep, AppState, StateDep
from services.api.problems import REDIS_DOWN, UNAUTHORIZED, Problem, problem_responses
from services.api.schemas import JobStatus
from shared.jobs import JobRecord, JobState

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[ApiKeyDep])

# no pattern on the path parameter: a malformed id is a job that does not exist (404), not
# an invalid request (422)
JobId = Annotated[str, Path(description="The id from X-Job-Id (32 hexadecimal digits)")]
JOB_ID = re.compile(r"[0-9a-f]{32}")
UNKNOWN_JOB = "Unknown job: it never existed (or the id is malformed) or it expired"


async def load_job(state: AppState, job_id: str) -> JobRecord:
    if not JOB_ID.fullmatch(job_id):
        raise Problem(
            kinds.UNKNOWN_JOB,
            f"no job {job_id[:64]!r}: job ids are 32 lowercase hexadecimal digits (X-Job-Id)",
        )
    job = await state.jobs.read(job_id)
    if job is None:
        raise Problem(
            kinds.UNKNOWN_JOB,
            f"no job {job_id}: it never existed or has expired (a finished job is kept "
            f"{state.settings.result_ttl_s} s: S2I_RESULT_TTL_S)",
        )
    return job


@router.get(
    "/{job_id}",
    summary="A job's state and timings",
    operation_id="get_job",
    responses=problem_responses({401: UNAUTHORIZED, 404: UNKNOWN_JOB, 503: REDIS_DOWN}),
)
async def get_job(job_id: JobId, state: StateDep) -> JobStatus:
    return JobStatus.of(await load_job(state, job_id))


@router.get(
    "/{job_id}/result",
    summary="A finished job's image",
    description="A job that failed answers the problem it failed with, as `POST /v1/translate` "
    "or `POST /v1/generate` would have (e.g. 404 unknown-model, 500 internal-error, "
    "504 deadline-exceeded), with its `job_id`.",
    operation_id="get_job_result",
    response_class=Response,
    responses={
        200: {
            "description": submit.RESULT_DESCRIPTION,
            "content": submit.RESULT_CONTENT,
            "headers": {**submit.JOB_HEADERS, **submit.ROUTED_BY_HEADER, **submit.SEED_HEADER},
        },
        **problem_responses(
            {
                400: "The job failed: its image could not be read",
                401: UNAUTHORIZED,
                404: f"{UNKNOWN_JOB}; or the job failed: unknown model or version",
                409: "Not finished yet (see Retry-After)",
                410: "The job was canceled, its input expired before it ran, or its result expired",
                413: "The job failed: its image is too large",
                415: "The job failed: its image format is not supported",
                422: "The job failed: the model does not take its condition (`style`)",
                500: "The job failed inside the worker",
                503: REDIS_DOWN,
                504: "The job's deadline passed before it ran or finished",
            },
            retry_after=(409, 503),
        ),
    },
)
async def get_result(job_id: JobId, state: StateDep, request: Request) -> Response:
    job = await load_job(state, job_id)
    if not job.state.final:
        raise Problem(
            kinds.JOB_NOT_FINISHED,
            f"the job is {job.state.value}; poll /v1/jobs/{job_id}",
            headers={"Retry-After": "1"},
            job_id=job_id,
        )
    return await submit.result_response(state, request, job)


@router.delete(
    "/{job_id}",
    summary="Cancel a queued job",
    description="Canceling a canceled job answers 200 again.",
    operation_id="cancel_job",
    responses=problem_responses(
        {
            401: UNAUTHORIZED,
            404: UNKNOWN_JOB,
            409: "Already running (it cannot be stopped midway) or already finished",
            503: REDIS_DOWN,
        }
    ),
)
async def cancel_job(job_id: JobId, state: StateDep) -> JobStatus:
    job = await load_job(state, job_id)
    await state.jobs.transition(
        job_id, (JobState.queued,), JobState.canceled, finished_at=time.time()
    )
    job = await load_job(state, job_id)
    if job.state is JobState.running:
        raise Problem(
            kinds.JOB_RUNNING,
            "a running job finishes within its deadline; it cannot be canceled",
        )
    if job.state.final and job.state is not JobState.canceled:
        raise Problem(
            kinds.JOB_FINISHED,
            f"job {job_id} already {job.state}; nothing to cancel",
        )
    return JobStatus.of(job)

"""``POST/GET/DELETE /v1/trainings``: training runs on the trainer service's queue (admin)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.api import problem_kinds as kinds
from services.api.deps import AdminKeyDep, StateDep
from services.api.problems import REDIS_DOWN, Problem, problem_responses
from shared.celery_app import TRAIN_TASK
from shared.trainings import (
    RECIPE_NAMES,
    TRAINER_KEY_PREFIX,
    TRAINING_TTL_S,
    TrainingRecord,
    TrainingState,
    cancel_key,
    dataset_problem,
    training_key,
)

router = APIRouter(prefix="/v1/trainings", tags=["training"], dependencies=[AdminKeyDep])

TrainingId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]

ADMIN_PROBLEMS = {
    401: "Missing or wrong admin API key",
    403: "Admin endpoints are disabled (the server has no `S2I_ADMIN_API_KEYS`)",
    503: REDIS_DOWN,
}
UNKNOWN_TRAINING = "Unknown training run (or it expired)"
MALFORMED_ID = "The training id is malformed (32 hexadecimal digits)"


class TrainingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipe: str = Field(..., description=f"one of {', '.join(RECIPE_NAMES)}")
    dataset: str = Field(
        ..., description="a folder relative to the data volume (S2I_DATA_ROOT), or synthetic://N"
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description='training config fields, e.g. {"max_steps": 1000, "amp": "bf16", '
        '"options": {"lambda_l1": 50}}',
    )


async def _load(state: StateDep, training_id: str) -> TrainingRecord:
    raw = await state.redis.get(training_key(training_id))
    if raw is None:
        raise Problem(kinds.UNKNOWN_TRAINING, f"no training run {training_id}")
    return TrainingRecord.model_validate_json(raw)


@router.post(
    "",
    status_code=202,
    summary="Start a training run (queued on the trainer service)",
    operation_id="start_training",
    response_model=TrainingRecord,
    responses={
        202: {
            "description": "Queued: poll `Location`",
            "headers": {
                "Location": {"description": "The run to poll", "schema": {"type": "string"}}
            },
        },
        **problem_responses(
            {
                **ADMIN_PROBLEMS,
                422: "Invalid fields, an unknown recipe, an unacceptable dataset path, or "
                "overrides of `recipe`, `data` or `run_dir`",
                503: "No trainer service is running, or Redis is unreachable (see Retry-After)",
            }
        ),
    },
)
async def start_training(body: TrainingRequest, state: StateDep) -> JSONResponse:
    if body.recipe not in RECIPE_NAMES:
        raise Problem.invalid_field(
            "recipe", f"unknown recipe {body.recipe!r}; choose one of {', '.join(RECIPE_NAMES)}"
        )
    why = dataset_problem(body.dataset)
    if why is not None:
        raise Problem(kinds.INVALID_DATASET, why)
    forbidden = {"recipe", "data", "run_dir"} & set(body.overrides)
    if forbidden:
        raise Problem.invalid_field("overrides", f"overrides may not set {sorted(forbidden)}")
    if not [k async for k in state.redis.scan_iter(match=TRAINER_KEY_PREFIX + "*", count=100)]:
        raise Problem(
            kinds.NO_TRAINER,
            "start one: `make run TRAINER=1` locally, `python -m services.trainer serve` "
            "(needs the trainer extra: pip install 'sketch2image[trainer]'), or the compose "
            "`train` profile",
            headers={"Retry-After": str(state.settings.retry_after_s)},
        )
    record = TrainingRecord(
        id=uuid.uuid4().hex, recipe=body.recipe, dataset=body.dataset, overrides=body.overrides
    )
    await state.redis.set(training_key(record.id), record.model_dump_json(), ex=TRAINING_TTL_S)
    await run_in_threadpool(
        state.celery.send_task, TRAIN_TASK, args=[record.id], queue=state.settings.training_queue
    )
    return JSONResponse(
        record.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/trainings/{record.id}"},
    )


@router.get(
    "/{training_id}",
    summary="A run's state, epoch, losses, metrics, ETA, versions",
    operation_id="get_training",
    responses=problem_responses({**ADMIN_PROBLEMS, 404: UNKNOWN_TRAINING, 422: MALFORMED_ID}),
)
async def get_training(training_id: TrainingId, state: StateDep) -> TrainingRecord:
    return await _load(state, training_id)


@router.delete(
    "/{training_id}",
    summary="Cancel: a queued run at once (200), a running one at its next step (202)",
    operation_id="cancel_training",
    response_model=TrainingRecord,
    responses={
        202: {
            "description": "Running: `canceling` until it stops with a resumable checkpoint",
            "model": TrainingRecord,
        },
        **problem_responses(
            {
                **ADMIN_PROBLEMS,
                404: UNKNOWN_TRAINING,
                409: "The run already finished",
                422: MALFORMED_ID,
            }
        ),
    },
)
async def cancel_training(training_id: TrainingId, state: StateDep) -> JSONResponse:
    record = await _load(state, training_id)
    if record.state in (TrainingState.succeeded, TrainingState.failed):
        raise Problem(
            kinds.TRAINING_FINISHED,
            f"training {training_id} already {record.state}; nothing to cancel",
        )
    status = 200
    if not record.state.final:
        await state.redis.set(cancel_key(training_id), "1", ex=TRAINING_TTL_S)
        if record.state is TrainingState.queued:
            record.state = TrainingState.canceled
        else:  # the trainer stops at its next step and writes `canceled`
            record.state, status = TrainingState.canceling, 202
        await state.redis.set(
            training_key(training_id), record.model_dump_json(), ex=TRAINING_TTL_S
        )
    return JSONResponse(record.model_dump(mode="json"), status_code=status)

"""``GET /v1/models`` and ``GET /v1/models/{name}``: what the workers serve."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from services.api.deps import ApiKeyDep, StateDep
from services.api.problems import REDIS_DOWN, UNAUTHORIZED, Problem, problem_responses
from services.api.schemas import ModelInfo, ModelList

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[ApiKeyDep])


def _info(name: str, entry: dict[str, Any]) -> ModelInfo:
    return ModelInfo.model_validate({**entry, "name": name})


@router.get(
    "",
    summary="Models served by the running workers",
    operation_id="list_models",
    responses=problem_responses({401: UNAUTHORIZED, 503: REDIS_DOWN}),
)
async def list_models(state: StateDep) -> ModelList:
    view = await state.cluster.get()
    s = state.settings
    return ModelList(
        models=[_info(name, entry) for name, entry in sorted(view.models.items())],
        defaults={
            "sketch2photo": s.default_sketch2photo_model,
            "photo2sketch": s.default_photo2sketch_model,
        },
    )


@router.get(
    "/{name}",
    summary="One model: served version, task, input, metrics",
    operation_id="get_model",
    responses=problem_responses(
        {
            401: UNAUTHORIZED,
            404: "No worker serves a model of that name",
            422: "Not a model name (lowercase letters, digits and `-`)",
            503: REDIS_DOWN,
        }
    ),
)
async def get_model(
    name: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")], state: StateDep
) -> ModelInfo:
    view = await state.cluster.get()
    if name not in view.models:
        raise Problem.from_kind(
            "model_not_found",
            f"unknown model {name!r}; served: {', '.join(sorted(view.models)) or 'none'}",
        )
    return _info(name, view.models[name])

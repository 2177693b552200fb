"""``GET /v1/models`` and ``GET /v1/models/{name}``: what the workers serve."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from services.api import problem_kinds as kinds
from services.api.cluster import ClusterView
from services.api.deps import ApiKeyDep, StateDep
from services.api.problems import REDIS_DOWN, UNAUTHORIZED, Problem, problem_responses
from services.api.schemas import ModelInfo, ModelList
from shared.manifest import MODEL_NAME_PATTERN

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[ApiKeyDep])


def _info(view: ClusterView, name: str) -> ModelInfo:
    """What the newest worker serving ``name`` announced, and how many workers serve it."""
    served = view.models[name].model_dump(mode="json", exclude_unset=True)
    return ModelInfo.model_validate({**served, "name": name, "workers": view.worker_counts[name]})


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
        models=[_info(view, name) for name in sorted(view.models)],
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
    name: Annotated[str, Path(pattern=MODEL_NAME_PATTERN)], state: StateDep
) -> ModelInfo:
    view = await state.cluster.get()
    if name not in view.models:
        raise Problem(
            kinds.UNKNOWN_MODEL,
            f"unknown model {name!r}; served: {', '.join(sorted(view.models)) or 'none'}",
        )
    return _info(view, name)

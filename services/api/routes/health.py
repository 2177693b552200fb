"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import OutOfMemoryError

from services.api.deps import StateDep, check_metrics_key
from services.api.problems import RETRY_AFTER_HEADER, problem_responses
from services.api.schemas import Readiness

router = APIRouter(tags=["health"])

READINESS_KEY = "s2i:readyz"  # written (with a TTL) by every readiness check


@router.get("/healthz", summary="Liveness: the API process answers", operation_id="healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: Redis takes writes and at least one worker serves a model",
    operation_id="readyz",
    response_model=Readiness,
    responses={
        503: {"description": "Not ready", "model": Readiness, "headers": RETRY_AFTER_HEADER}
    },
)
async def readyz(state: StateDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        # a write, not a ping: a Redis at maxmemory (noeviction) answers pings but refuses jobs
        await state.redis.set(READINESS_KEY, "1", ex=10)
        checks["redis"] = "ok"
        view = await state.cluster.get(fresh=True)
        checks["workers"] = f"{len(view.workers)} alive, {len(view.models)} models served"
        ready = bool(view.models)
    except OutOfMemoryError:
        checks["redis"] = "refusing writes: maxmemory reached"
        ready = False
    except Exception as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
        ready = False
    headers = {} if ready else {"Retry-After": str(state.settings.retry_after_s)}
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
        headers=headers,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (API and cluster-wide serving)",
    operation_id="metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **problem_responses({401: "`S2I_METRICS_NEED_KEY` is set and no valid API key was sent"}),
    },
)
async def metrics(request: Request, state: StateDep) -> Response:
    check_metrics_key(request, state.settings)
    body = await run_in_threadpool(generate_latest, state.metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)

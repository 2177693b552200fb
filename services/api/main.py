"""The FastAPI app: ``uvicorn services.api.main:app``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.api.cluster import ClusterCache
from services.api.deps import AppState
from services.api.limits import BodySizeLimit, body_limit
from services.api.problems import install_problem_handlers
from services.api.routes import health, jobs, models, trainings, translate, web
from services.api.routes.docs import install_docs
from services.api.schemas import Problem, TranslateJSON, TranslateResult
from services.api.security import SecurityHeaders
from services.api.telemetry import instrument, make_registry
from services.api.waiter import JobWaiter
from shared.celery_app import make_celery
from shared.job_store import AsyncJobStore
from shared.redis_clients import connect_async
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """
Turn sketches into photos and photos into sketches with GAN generators.

* `POST /v1/translate` takes an image (multipart `image` field, JSON base64, or the raw body);
  `model=auto` decides whether it is a drawing or a photo and says which model it chose in
  `X-Model`. Synchronous by default; `Prefer: respond-async` or `?async=true` answers 202 with
  a `Location` to poll.
* `POST /v1/generate` samples a generate model; `X-Seed` says which seed it used (a random one
  when the request had none): send it as `seed` to get the same images again.
* Errors are `application/problem+json` (RFC 9457): a `Problem` with a stable `type`
  (`urn:sketch2image:problem:<slug>`), `title`, `status`, `detail`, and `errors` (each field and
  what is wrong with it) on invalid fields. A malformed job id is an unknown job (404).
* Responses carry `X-Job-Id`, `X-Model`, `X-Model-Version`, `X-Queue-Ms`, `X-Compute-Ms`.
* When the server has API keys (`S2I_API_KEYS`), send one in `X-API-Key` or as
  `Authorization: Bearer <key>`; `/v1/trainings` always needs an admin key
  (`S2I_ADMIN_API_KEYS`). Probes and metrics need none.
"""

# FastAPI's own description of its 422 body, replaced by Problem (see _problem_schema)
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def _problem_schema(schema: dict[str, Any]) -> None:
    """Add the bodies documented by $ref (Problem, TranslateJSON, TranslateResult) and drop
    FastAPI's HTTPValidationError: the routes document each 422 they can answer as a Problem
    (FastAPI adds its own only to a route that does not, where validation cannot fail: a
    malformed job id is a 404, and the key headers take any string)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, TranslateJSON, TranslateResult):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
    for operations in schema["paths"].values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            body = responses.get("422", {}).get("content", {}).get("application/json", {})
            if body.get("schema", {}).get("$ref") == _FASTAPI_422:
                del responses["422"]
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


def _keys_optional(schema: dict[str, Any]) -> None:
    """With no S2I_API_KEYS the API key is optional: add the empty alternative ({}) to the
    routes that take one (admin routes always need an admin key)."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            security = operation.get("security", [])
            if {"ApiKey": []} in security:
                security.append({})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # the app's own log lines (uvicorn configures only its loggers); a no-op where the
    # root logger is already set up, e.g. under pytest
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = connect_async(
            settings.redis_url, socket_timeout=10, socket_connect_timeout=5, max_connections=512
        )
        job_store = AsyncJobStore(redis, settings.job_ttl_s, settings.result_ttl_s)
        waiter = JobWaiter(job_store)
        await waiter.start()
        app.state.s2i = AppState(
            settings=settings,
            redis=redis,
            jobs=job_store,
            celery=make_celery(settings, name="sketch2image-api"),
            waiter=waiter,
            cluster=ClusterCache(job_store),
            metrics=registry,
        )
        try:
            yield
        finally:
            await waiter.stop()
            await redis.aclose()
            sync_redis.close()

    app = FastAPI(
        title="sketch2image",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from local assets by routes.docs
        redoc_url=None,
    )
    registry, sync_redis = make_registry(settings)
    instrument(app, registry)
    install_problem_handlers(app, settings.retry_after_s)
    for module in (translate, jobs, models, trainings, health, web):
        app.include_router(module.router)
    install_docs(app)
    app.add_middleware(BodySizeLimit, max_bytes=body_limit(settings.max_upload_bytes))
    app.add_middleware(SecurityHeaders)

    def openapi() -> dict[str, Any]:
        """FastAPI's schema with Problem for every error and the bodies documented by $ref."""
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _problem_schema(schema)
            if not settings.api_keys:
                _keys_optional(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


app = create_app()

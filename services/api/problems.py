"""Errors as ``application/problem+json`` (RFC 9457) with stable ``type`` URIs.

Raise :class:`Problem` anywhere in a route; the handlers installed by
:func:`install_problem_handlers` turn it, FastAPI's validation errors, Redis/broker outages
and unexpected exceptions into problem documents a person can act on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from shared.images import ImageError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
CLIENT_CLOSED = 499  # nginx's "client closed request": the client left before the answer
TYPE_PREFIX = "urn:sketch2image:problem:"
# the body's schema: services.api.schemas.Problem, put under components by main's openapi()
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"

# what many endpoints can answer, as the schema words it
UNAUTHORIZED = "Missing or wrong API key (only when the server has API keys: `S2I_API_KEYS`)"
REDIS_DOWN = "Redis unreachable (see Retry-After)"
RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}

# error kinds (from images, jobs) -> (status, type slug, title)
KINDS: dict[str, tuple[int, str, str]] = {
    "unreadable": (400, "unreadable-image", "The image could not be read"),
    "too_large": (413, "image-too-large", "The image is too large"),
    "unsupported_format": (415, "unsupported-format", "The image format is not supported"),
    "model_not_found": (404, "unknown-model", "Unknown model or version"),
    "invalid_condition": (422, "invalid-request", "Some fields are invalid"),
    "deadline": (504, "deadline-exceeded", "The request's deadline passed"),
    "input_expired": (410, "input-expired", "The job's input expired before it ran"),
    "invalid_output": (500, "invalid-model-output", "The model gave an invalid output"),
    "internal": (500, "internal-error", "The job failed inside the worker"),
}


class Problem(Exception):
    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def from_kind(cls, kind: str, detail: str, **extra: Any) -> Problem:
        status, slug, title = KINDS.get(kind, KINDS["internal"])
        return cls(status, slug, title, detail, **extra)

    def response(self, instance: str | None = None) -> JSONResponse:
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }
        if instance:
            body["instance"] = instance
        return JSONResponse(
            body, status_code=self.status, headers=self.headers, media_type=PROBLEM_MEDIA_TYPE
        )


def problem_responses(
    statuses: Mapping[int, str], *, retry_after: Iterable[int] = (429, 503)
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for a route: each status an ``application/problem+json``
    :class:`~services.api.schemas.Problem` (with a ``Retry-After`` header where it has one)."""
    with_retry = set(retry_after)
    out: dict[int | str, dict[str, Any]] = {}
    for status, description in sorted(statuses.items()):
        entry: dict[str, Any] = {
            "description": description,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        }
        if status in with_retry:
            entry["headers"] = RETRY_AFTER_HEADER
        out[status] = entry
    return out


def unavailable(detail: str, retry_after: int) -> Problem:
    return Problem(
        503,
        "service-unavailable",
        "The service cannot take the request right now",
        detail,
        headers={"Retry-After": str(retry_after)},
    )


def install_problem_handlers(app: FastAPI, retry_after_s: int) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return exc.response(request.url.path)

    async def on_image_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ImageError)
        return Problem.from_kind(exc.kind, exc.detail).response(request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "message": e["msg"],
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)
        return Problem(
            422, "invalid-request", "Some fields are invalid", detail, errors=errors
        ).response(request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized"}.get(
            exc.status_code, "http-error"
        )
        return Problem(
            exc.status_code, slug, str(exc.detail), str(exc.detail), headers=dict(exc.headers or {})
        ).response(request.url.path)

    async def on_backend_down(request: Request, exc: Exception) -> JSONResponse:
        if "maxmemory" in str(exc):  # a full Redis seen through kombu or a transaction
            return await on_redis_full(request, exc)
        log.warning("backend unavailable: %s", exc)
        return unavailable(
            "the job queue (Redis) is unreachable; try again shortly", retry_after_s
        ).response(request.url.path)

    async def on_redis_full(request: Request, exc: Exception) -> JSONResponse:
        # never log the error itself: a pipeline's error repeats its commands, image bytes too
        log.warning("Redis refuses writes (maxmemory reached): %s answered 503", request.url.path)
        return Problem(
            503,
            "storage-full",
            "The job store is full",
            "Redis has reached its memory limit and refuses new jobs; retry shortly",
            headers={"Retry-After": str(retry_after_s)},
        ).response(request.url.path)

    async def on_client_gone(request: Request, exc: Exception) -> Response:
        # nobody to answer: one quiet line, and 499 (client closed request) in the metrics
        log.info("client closed the connection during %s %s", request.method, request.url.path)
        return Response(status_code=CLIENT_CLOSED)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return Problem(
            500, "internal-error", "Internal error", "an unexpected error occurred; it was logged"
        ).response(request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(ImageError, on_image_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(OutOfMemoryError, on_redis_full)
    for exc_type in (RedisConnectionError, RedisTimeoutError, OperationalError, ConnectionError):
        app.add_exception_handler(exc_type, on_backend_down)
    app.add_exception_handler(ClientDisconnect, on_client_gone)
    app.add_exception_handler(Exception, on_unexpected)

"""Errors as ``application/problem+json`` (RFC 9457) with stable ``type`` URIs.

Raise :class:`Problem` anywhere in a route; the handlers installed by
:func:`install_problem_handlers` turn it, FastAPI's validation errors, Redis/broker outages
and unexpected exceptions into problem documents a person can act on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from kombu.exceptions import OperationalError
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from services.api import problem_kinds as kinds
from services.api.problem_kinds import ProblemKind
from shared.errors import ErrorKind
from shared.images import ImageError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
CLIENT_CLOSED = 499  # nginx's "client closed request": the client left before the answer
# the body's schema: services.api.schemas.Problem, put under components by main's openapi()
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"

# what many endpoints can answer, as the schema words it
UNAUTHORIZED = "Missing or wrong API key (only when the server has API keys: `S2I_API_KEYS`)"
REDIS_DOWN = "Redis unreachable (see Retry-After)"
RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}
# FastAPI's 400 for a JSON body it cannot decode: answered as the 422 every other bad body gets
BODY_PARSE_ERROR = "There was an error parsing the body"
# the framework's own HTTP errors, by status (any other is http-error)
_HTTP_KINDS = {401: kinds.UNAUTHORIZED, 404: kinds.NOT_FOUND, 405: kinds.METHOD_NOT_ALLOWED}

FieldErrors = Sequence[tuple[str, str]]  # (field, message); field "" is the body as a whole


def _field(loc: Iterable[object]) -> str:
    """``("query", "async")`` -> ``query.async``; a JSON body's fields go without ``body.``."""
    return ".".join(str(part) for part in loc if part != "body")


class Problem(Exception):
    """An error answer: a :class:`ProblemKind` and what went wrong this time."""

    def __init__(
        self,
        kind: ProblemKind,
        detail: str,
        *,
        status: int | None = None,  # only for http-error: the framework error's status
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status = status or kind.status
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def invalid(cls, errors: FieldErrors, detail: str | None = None, **extra: Any) -> Problem:
        """422 invalid-request listing each field and what is wrong with it (the detail joins
        them unless given)."""
        text = detail or "; ".join(f"{field or 'body'}: {message}" for field, message in errors)
        listed = [{"field": field, "message": message} for field, message in errors]
        return cls(kinds.INVALID_REQUEST, text, errors=listed, **extra)

    @classmethod
    def invalid_field(cls, field: str, message: str) -> Problem:
        """422 invalid-request about one field; the detail is ``message``."""
        return cls.invalid([(field, message)], message)

    @classmethod
    def from_validation(cls, exc: ValidationError | RequestValidationError) -> Problem:
        """422 invalid-request from pydantic's or FastAPI's validation errors."""
        return cls.invalid([(_field(e.get("loc", ())), e["msg"]) for e in exc.errors()])

    @classmethod
    def from_failure(cls, kind: ErrorKind, detail: str, **extra: Any) -> Problem:
        """Why a job failed or an image was refused, as the problem to answer."""
        problem_kind = kinds.FAILURES.get(kind, kinds.INTERNAL_ERROR)
        if problem_kind is kinds.INVALID_REQUEST:
            return cls.invalid([("", detail)], detail, **extra)
        return cls(problem_kind, detail, **extra)

    def response(self, instance: str | None = None) -> JSONResponse:
        body: dict[str, Any] = {
            "type": self.kind.type,
            "title": self.kind.title,
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
    return Problem(kinds.SERVICE_UNAVAILABLE, detail, headers={"Retry-After": str(retry_after)})


def install_problem_handlers(app: FastAPI, retry_after_s: int) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return exc.response(request.url.path)

    async def on_image_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ImageError)
        return Problem.from_failure(exc.kind, exc.detail).response(request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return Problem.from_validation(exc).response(request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:  # JSON that is not JSON
            return Problem.invalid([("", "the body is not valid JSON")]).response(request.url.path)
        kind = _HTTP_KINDS.get(exc.status_code, kinds.HTTP_ERROR)
        return Problem(
            kind, str(exc.detail), status=exc.status_code, headers=dict(exc.headers or {})
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
            kinds.STORAGE_FULL,
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
            kinds.INTERNAL_ERROR, "an unexpected error occurred; it was logged"
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

"""The API's shared state and its ``Annotated`` dependencies."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from services.api import problem_kinds as kinds
from services.api.cluster import ClusterCache
from services.api.problems import Problem
from services.api.waiter import JobWaiter
from shared.job_store import AsyncJobStore
from shared.settings import Settings


@dataclass
class AppState:
    settings: Settings
    redis: Redis
    jobs: AsyncJobStore
    celery: Celery
    waiter: JobWaiter
    cluster: ClusterCache
    metrics: CollectorRegistry


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.s2i
    return state


StateDep = Annotated[AppState, Depends(get_state)]


# The security schemes of the OpenAPI schema (a route needs one of its two): the key in
# X-API-Key, or the same key as `Authorization: Bearer <key>`. Not auto_error: with no keys
# configured nothing is needed, and a missing key is a problem+json 401 from _check.
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    description="An API key (`S2I_API_KEYS`; admin keys work too). Needed only when the server "
    "has API keys configured.",
    auto_error=False,
)
ADMIN_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    scheme_name="AdminApiKey",
    description="An admin API key (`S2I_ADMIN_API_KEYS`), for `/v1/trainings`",
    auto_error=False,
)
BEARER = HTTPBearer(
    scheme_name="BearerAuth",
    description="The same keys as `Authorization: Bearer <key>`: an API key, or an admin key "
    "for `/v1/trainings`",
    auto_error=False,
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]


def _presented_key(
    x_api_key: str | None, bearer: HTTPAuthorizationCredentials | None
) -> str | None:
    return x_api_key or (bearer.credentials if bearer is not None else None)


def _same_key(presented: str, key: str) -> bool:
    """Constant-time comparison of UTF-8 bytes: never raises, whatever the header holds
    (``compare_digest`` on str refuses non-ASCII text with a TypeError)."""
    return secrets.compare_digest(
        presented.encode("utf-8", "surrogateescape"), key.encode("utf-8", "surrogateescape")
    )


def _check(keys: list[str], presented: str | None, what: str) -> None:
    if not keys:
        return
    if presented is None or not any(_same_key(presented, k) for k in keys):
        raise Problem(
            kinds.UNAUTHORIZED,
            f"send {what} in the X-API-Key header or as Authorization: Bearer <key>",
            headers={"WWW-Authenticate": 'Bearer realm="sketch2image"'},
        )


async def require_api_key(
    request: Request,
    state: StateDep,
    x_api_key: Annotated[str | None, Security(API_KEY_HEADER)],
    bearer: BearerDep,
) -> None:
    s = state.settings
    presented = _presented_key(x_api_key, bearer)
    _check([*s.api_keys, *s.admin_api_keys] if s.api_keys else [], presented, "an API key")
    request.state.api_key = presented  # who is asking (Idempotency-Keys are scoped by it)


def check_metrics_key(request: Request, settings: Settings) -> None:
    """``/metrics`` with ``S2I_METRICS_NEED_KEY``: any API or admin key, read from the headers
    (kept out of the OpenAPI security schemes: scrapers are configured, not generated)."""
    keys = [*settings.api_keys, *settings.admin_api_keys]
    if not settings.metrics_need_key or not keys:
        return
    bearer = request.headers.get("authorization", "")
    token = bearer[7:] if bearer[:7].lower() == "bearer " else None
    _check(keys, request.headers.get("x-api-key") or token, "an API key")


async def require_admin_key(
    state: StateDep,
    x_api_key: Annotated[str | None, Security(ADMIN_KEY_HEADER)],
    bearer: BearerDep,
) -> None:
    keys = state.settings.admin_api_keys
    if not keys:
        raise Problem(
            kinds.ADMIN_DISABLED,
            "set S2I_ADMIN_API_KEYS to enable training runs through the API",
        )
    _check(keys, _presented_key(x_api_key, bearer), "an admin API key")


ApiKeyDep = Depends(require_api_key)
AdminKeyDep = Depends(require_admin_key)

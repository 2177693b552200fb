"""The API's shared state and its ``Annotated`` dependencies."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from celery import Celery
from fastapi import Depends, Header, Request
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from services.api.cluster import ClusterCache
from services.api.problems import Problem
from services.api.waiter import JobWaiter
from shared.settings import Settings


@dataclass
class AppState:
    settings: Settings
    redis: Redis
    celery: Celery
    waiter: JobWaiter
    cluster: ClusterCache
    metrics: CollectorRegistry


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.s2i
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def _presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    if x_api_key:
        return x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def _check(keys: list[str], presented: str | None, what: str) -> None:
    if not keys:
        return
    if presented is None or not any(secrets.compare_digest(presented, k) for k in keys):
        raise Problem(
            401,
            "unauthorized",
            "Missing or wrong API key",
            f"send {what} in the X-API-Key header or as Authorization: Bearer <key>",
            headers={"WWW-Authenticate": 'Bearer realm="sketch2image"'},
        )


async def require_api_key(
    state: StateDep,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    s = state.settings
    _check(
        [*s.api_keys, *s.admin_api_keys] if s.api_keys else [],
        _presented_key(x_api_key, authorization),
        "an API key",
    )


async def require_admin_key(
    state: StateDep,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    keys = state.settings.admin_api_keys
    if not keys:
        raise Problem(
            403,
            "admin-disabled",
            "Admin endpoints are disabled",
            "set S2I_ADMIN_API_KEYS to enable training runs through the API",
        )
    _check(keys, _presented_key(x_api_key, authorization), "an admin API key")


ApiKeyDep = Depends(require_api_key)
AdminKeyDep = Depends(require_admin_key)

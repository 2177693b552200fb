"""Redis clients that ride through a Redis restart.

A restart closes every pooled connection; without a retry the next command on each of them
fails (the API would answer 503 to a few requests after every Redis restart). These clients
send a command that meets a closed connection or a timeout once more, on a fresh connection
(redis-py retries only the errors listed in ``retry_on_error``; by default none).
"""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

RETRIES = 1  # a fresh connection once; a Redis that is really down still fails fast
RETRY_ON: list[type[Exception]] = [ConnectionError, TimeoutError]


def _backoff() -> ExponentialBackoff:
    return ExponentialBackoff(cap=0.5, base=0.05)


def connect(url: str, **options: Any) -> Redis:
    """A blocking client (the worker, the API's metrics) for ``url``."""
    retry = Retry(_backoff(), RETRIES)
    return Redis.from_url(url, retry=retry, retry_on_error=RETRY_ON, **options)


def connect_async(url: str, **options: Any) -> AsyncRedis:
    """An asyncio client (the API) for ``url``."""
    retry = AsyncRetry(_backoff(), RETRIES)
    return AsyncRedis.from_url(url, retry=retry, retry_on_error=RETRY_ON, **options)

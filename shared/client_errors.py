"""The client's exception tree, mapped from HTTP answers at one point (``error_from_response``).

S2IError
├── ConnectionFailed       the API could not be reached (or did not answer in time)
├── WaitTimeout            a job did not finish within ``wait``'s timeout
└── ApiError               a problem+json answer: status, type, title, detail, retry_after
    ├── BadInput           400, 413, 415, 422
    ├── NotFound           404
    ├── Conflict           409
    ├── Overloaded         429, 503 (retry_after)
    ├── DeadlineExceeded   504
    └── ServerError        any other 5xx
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class S2IError(Exception):
    """Base of every error this client raises."""


class ConnectionFailed(S2IError):
    """The API could not be reached or did not answer (connection refused, DNS, timeout)."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url


class WaitTimeout(S2IError, TimeoutError):
    """:meth:`Sketch2ImageClient.wait` gave up before the job finished."""


class ApiError(S2IError):
    """An error answer: ``status``, and ``type``/``title``/``detail`` of the problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        type: str = "about:blank",
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.status, self.title, self.detail, self.type = status, title, detail, type
        self.retry_after = retry_after
        self.body: dict[str, Any] = body or {}
        text = f"{status} {title}: {detail}" if detail and detail != title else f"{status} {title}"
        super().__init__(text)

    @property
    def job_id(self) -> str | None:
        value = self.body.get("job_id")
        return value if isinstance(value, str) else None


class BadInput(ApiError):
    """400 unreadable image, 413 too large, 415 unsupported format, 422 invalid fields."""


class NotFound(ApiError):
    """404: unknown model, version or job."""


class Conflict(ApiError):
    """409: the job has not finished, or is already running."""


class Overloaded(ApiError):
    """429 queue full or 503 no worker / Redis down: retry after ``retry_after`` seconds."""


class DeadlineExceeded(ApiError):
    """504: the request's deadline passed; the job will not run."""


class ServerError(ApiError):
    """Any other 5xx."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadInput, 413: BadInput, 415: BadInput, 422: BadInput, 404: NotFound,
    409: Conflict, 429: Overloaded, 503: Overloaded, 504: DeadlineExceeded,
}  # fmt: skip


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or an HTTP date); None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def error_from_response(response: httpx.Response) -> ApiError:
    """The :class:`ApiError` subclass for an error response (problem+json or any other body)."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = " ".join(response.text.split())[:200]
        body = {"title": response.reason_phrase or "HTTP error", "detail": text}
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(
        status,
        str(body.get("title") or response.reason_phrase or "HTTP error"),
        str(body.get("detail") or ""),
        type=str(body.get("type") or "about:blank"),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        body=body,
    )

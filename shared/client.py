"""A small typed client for the sketch2image HTTP API (sync, on httpx).

    from pathlib import Path
    from shared.client import BadInput, Sketch2ImageClient

    with Sketch2ImageClient("http://127.0.0.1:8000", api_key=None) as s2i:
        out = s2i.translate(Path("drawing.png"), model="auto", format="png")
        Path("photo.png").write_bytes(out.image)
        print(out.model, out.version, out.routed_by, out.compute_ms)
        job = s2i.translate_async(Path("drawing.png"), model="sketch2photo")
        if s2i.wait(job.id).state == "succeeded":
            photo = s2i.result(job.id)

Every failure is an :class:`S2IError`: :class:`ApiError` (and a subclass per status) for
problem+json answers, :class:`ConnectionFailed` when the API cannot be reached.
"""

from __future__ import annotations

import mimetypes
import time
from pathlib import Path
from typing import Any

import httpx

from shared.client_errors import (
    ApiError,
    BadInput,
    Conflict,
    ConnectionFailed,
    DeadlineExceeded,
    NotFound,
    Overloaded,
    S2IError,
    ServerError,
    WaitTimeout,
    error_from_response,
    parse_retry_after,
)
from shared.client_results import GenerateResult, JobStatus, TranslateResult

__all__ = [
    "ApiError",
    "BadInput",
    "Conflict",
    "ConnectionFailed",
    "DeadlineExceeded",
    "GenerateResult",
    "JobStatus",
    "NotFound",
    "Overloaded",
    "S2IError",
    "ServerError",
    "Sketch2ImageClient",
    "TranslateResult",
    "WaitTimeout",
    "error_from_response",
    "parse_retry_after",
]

DEFAULT_URL = "http://127.0.0.1:8000"


ImageInput = bytes | Path


class Sketch2ImageClient:
    """Sync client; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        headers = {"User-Agent": "sketch2image-client/0.1"}
        if api_key:
            headers["X-API-Key"] = api_key
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Sketch2ImageClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> httpx.Response:
        """The one place where httpx errors and error statuses become :class:`S2IError`."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:  # refused, DNS, timeouts, dropped connections
            url = self.base_url
            if isinstance(
                exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol
            ):
                message = f"cannot reach {url}: {exc}"
            elif isinstance(exc, httpx.TimeoutException):
                message = f"no answer from {url} in time ({type(exc).__name__})"
            else:
                message = f"connection to {url} failed: {type(exc).__name__}: {exc}"
            raise ConnectionFailed(message, url) from exc
        if response.status_code not in ok:
            raise error_from_response(response)
        return response

    def _submit(
        self, image: ImageInput, is_async: bool, idempotency_key: str | None, **fields: Any
    ) -> httpx.Response:
        if isinstance(image, Path):
            name, data = image.name, image.read_bytes()
        else:
            name, data = "image", image
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        form = {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in fields.items()
            if v is not None  # optional fields go only when given
        }
        deadline = fields.get("timeout")
        return self._request(
            "POST",
            "/v1/translate",
            ok=(202,) if is_async else (200,),
            files={"image": (name, data, ctype)},
            data=form,
            params={"async": "true"} if is_async else {},
            headers={"Idempotency-Key": idempotency_key} if idempotency_key else {},
            timeout=self.timeout if deadline is None else max(self.timeout, deadline + 5),
        )

    def translate(
        self,
        image: ImageInput,
        *,
        model: str = "auto",
        version: int | None = None,
        format: str = "png",
        keep_aspect: bool = False,
        output_size: str | None = None,
        style: int | None = None,
        n: int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        **extra_fields: str | int | float | bool | None,
    ) -> TranslateResult:
        """Translate ``image`` (bytes or a file) and wait for it.

        ``output_size``: "model" (the server's default) or "input" (the input's width and
        height); ``n`` (1-8) and ``seed``: variations of a model with noise, as one grid (the
        seed used comes back in ``seed``); ``timeout`` is the server-side deadline (504 after it);
        ``extra_fields`` are sent as they are. Optional fields are sent only when given.
        """
        r = self._submit(
            image, False, idempotency_key, model=model, version=version, format=format,
            keep_aspect=keep_aspect or None, output_size=output_size, style=style, n=n,
            seed=seed, timeout=timeout, **extra_fields,
        )  # fmt: skip
        return TranslateResult.from_response(r)

    def translate_async(
        self,
        image: ImageInput,
        *,
        model: str = "auto",
        version: int | None = None,
        format: str = "png",
        keep_aspect: bool = False,
        output_size: str | None = None,
        style: int | None = None,
        n: int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        **extra_fields: str | int | float | bool | None,
    ) -> JobStatus:
        """Queue a translation (202); follow it with :meth:`wait` and :meth:`result`."""
        r = self._submit(
            image, True, idempotency_key, model=model, version=version, format=format,
            keep_aspect=keep_aspect or None, output_size=output_size, style=style, n=n,
            seed=seed, timeout=timeout, **extra_fields,
        )  # fmt: skip
        return JobStatus.from_json(r.json())

    def generate(
        self,
        model: str,
        *,
        n: int = 1,
        seed: int | None = None,
        class_name: str | None = None,
        format: str = "png",
        version: int | None = None,
        timeout: float | None = None,
    ) -> GenerateResult:
        """``n`` images from a ``generate`` model as one grid; the same ``seed``, the same grid."""
        body = {"model": model, "n": n, "format": format, "seed": seed,
                "class_name": class_name, "version": version, "timeout": timeout}  # fmt: skip
        r = self._request(
            "POST",
            "/v1/generate",
            json={k: v for k, v in body.items() if v is not None},
            timeout=self.timeout if timeout is None else max(self.timeout, timeout + 5),
        )
        return TranslateResult.from_response(r)

    def _get(self, path: str) -> Any:
        return self._request("GET", path).json()

    def job(self, job_id: str) -> JobStatus:
        return JobStatus.from_json(self._get(f"/v1/jobs/{job_id}"))

    def cancel(self, job_id: str) -> JobStatus:
        """Cancel a queued job; :class:`Conflict` if it is running or finished."""
        return JobStatus.from_json(self._request("DELETE", f"/v1/jobs/{job_id}").json())

    def wait(self, job_id: str, poll_s: float = 0.2, timeout: float = 60.0) -> JobStatus:
        """Poll until the job is final (any final state); :class:`WaitTimeout` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not (status := self.job(job_id)).final:
            if time.monotonic() + poll_s > deadline:
                raise WaitTimeout(f"job {job_id} is still {status.state} after {timeout} s")
            time.sleep(poll_s)
        return status

    def result(self, job_id: str) -> bytes:
        """A finished job's image; the job's own error (504, 410, ...) if it did not succeed."""
        return self._request("GET", f"/v1/jobs/{job_id}/result").content

    def models(self) -> list[dict[str, Any]]:
        """What the workers serve: name, version, task, input, metrics, ... per model."""
        return self._get("/v1/models")["models"]

    def model(self, name: str) -> dict[str, Any]:
        return self._get(f"/v1/models/{name}")

    def health(self) -> dict[str, Any]:
        return self._get("/healthz")

    def ready(self) -> dict[str, Any]:
        """``{"status": "ready" | "not ready", "checks": {...}}`` (a 503 is not raised)."""
        body: dict[str, Any] = self._request("GET", "/readyz", ok=(200, 503)).json()
        return body

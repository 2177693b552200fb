"""What the API answers, read into typed values: an image answer (from its ``X-*`` headers) and
a job's status (from ``GET /v1/jobs/{id}``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.jobs import JobState


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class TranslateResult:
    """An image answer and what made it (from the ``X-*`` headers)."""

    image: bytes = field(repr=False)
    media_type: str
    model: str
    version: int | None
    routed_by: str | None
    job_id: str
    queue_ms: float | None
    compute_ms: float | None
    seed: int | None = None  # the seed the images came from (models with noise, generate)

    @classmethod
    def from_response(cls, r: httpx.Response) -> TranslateResult:
        h = r.headers
        version = h.get("x-model-version")
        return cls(
            image=r.content,
            media_type=h.get("content-type", "application/octet-stream").split(";")[0],
            model=h.get("x-model", ""),
            version=int(version) if version and version.isdigit() else None,
            routed_by=h.get("x-routed-by"),
            job_id=h.get("x-job-id", ""),
            queue_ms=_float(h.get("x-queue-ms")),
            compute_ms=_float(h.get("x-compute-ms")),
            seed=int(seed) if (seed := h.get("x-seed")) and seed.lstrip("-").isdigit() else None,
        )


GenerateResult = TranslateResult


@dataclass(frozen=True)
class JobStatus:
    """``GET /v1/jobs/{id}``; ``raw`` is the whole JSON document."""

    id: str
    state: str
    model: str
    version: int | None
    routed_by: str | None
    queue_ms: float | None
    compute_ms: float | None
    error: dict[str, Any] | None
    result_url: str | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def final(self) -> bool:
        return self.state in JobState.__members__ and JobState(self.state).final

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobStatus:
        timings = data.get("timings") or {}
        return cls(
            id=data["id"],
            state=data["state"],
            model=data.get("model", ""),
            version=data.get("version"),
            routed_by=data.get("routed_by"),
            queue_ms=timings.get("queue_ms"),
            compute_ms=timings.get("compute_ms"),
            error=data.get("error"),
            result_url=data.get("result_url"),
            raw=data,
        )

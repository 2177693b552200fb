"""A worker's heartbeat: what it serves, as JSON under ``s2i:worker:<id>`` (expiring).

The worker writes one (``WorkerRuntime.beat``) every few seconds; the API reads them all
(``shared.job_store``) to answer ``/v1/models``, check requests and export ``/metrics``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.manifest import Manifest, Task, TensorSpec


class ServedModel(BaseModel):
    """One model a worker serves: its manifest (less the file hashes), the backend running
    it, and the versions it can run."""

    model_config = ConfigDict(extra="allow")  # the rest of the manifest: dataset, steps, ...

    name: str
    version: int
    task: Task
    architecture: str
    recipe: str
    input: TensorSpec
    output: TensorSpec | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    backend: str | None = None  # e.g. "onnx:CPUExecutionProvider"
    available_versions: list[int] = Field(default_factory=list)
    refused_versions: dict[str, str] = Field(default_factory=dict)  # version -> why not served

    @classmethod
    def of(
        cls, manifest: Manifest, backend: str, available: list[int], refused: dict[str, str]
    ) -> ServedModel:
        return cls.model_validate(
            {
                **manifest.summary(),
                "backend": backend,
                "available_versions": available,
                "refused_versions": refused,
            }
        )


class WorkerBeat(BaseModel):
    worker: str  # "<host>-<pid>", the key's suffix
    started_at: float = 0.0
    beat_at: float = 0.0
    queue: str = ""  # the Celery queue it consumes
    models: dict[str, ServedModel] = Field(default_factory=dict)
    failed: dict[str, str] = Field(default_factory=dict)  # "name:version" -> why not served

"""Request and response bodies of the HTTP API (they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from services.api.problem_kinds import TYPE_PREFIX, kinds_markdown
from shared.errors import ErrorKind
from shared.jobs import JobRecord, JobState, OutputFormat, OutputSize
from shared.manifest import MODEL_NAME, MODEL_NAME_PATTERN, Quantized, Task


def _form_int(value: Any) -> Any:
    """ "3" (a form field or query string) -> 3; anything else is left for strict checking."""
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


# a number: JSON true is not 1 (strict), though form fields and query strings ("3") still
# parse as numbers
StrictVersion = Annotated[int, Field(ge=1, strict=True), BeforeValidator(_form_int)]
MAX_VARIATIONS = 8  # n of POST /v1/translate
Variations = Annotated[int, Field(ge=1, le=MAX_VARIATIONS, strict=True), BeforeValidator(_form_int)]
SEED_LIMIT = 2**31  # translate seeds are in [0, SEED_LIMIT)
Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT, strict=True), BeforeValidator(_form_int)]


class TranslateOptions(BaseModel):
    """Options of ``POST /v1/translate``: form fields, JSON fields or query parameters."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        "auto",
        description="A model name, or `auto`: route drawings to the sketch→photo default and "
        "photos to the photo→sketch default (the choice is in `X-Model`).",
        pattern=f"^(auto|{MODEL_NAME})$",
    )
    version: StrictVersion | None = Field(
        None, description="Pin a version; default: the served one"
    )
    format: OutputFormat = "png"
    keep_aspect: bool = Field(
        False,
        description="Return the output at the input's aspect ratio, at the model's scale "
        "(a 600x400 input to a 128 px model gives 128x85); with `n` > 1, each variation",
    )
    output_size: OutputSize = Field(
        "model",
        description="`model`: the model's size (its `output` in `GET /v1/models`); `input`: "
        "the input's width and height (bicubic resize of the model's output, at most "
        "`S2I_MAX_OUTPUT_PIXELS` pixels, keeping the aspect ratio); with `n` > 1, each "
        "variation at that size, the `n` of them together within `S2I_MAX_OUTPUT_PIXELS`",
    )
    n: Variations = Field(
        1,
        description="Variations of the same input, returned as one grid (2 px white gutters, "
        "near-square: 4 gives 2x2), for models with noise (`input.noise_dim` > 0 in "
        "`GET /v1/models`, e.g. SketchyGAN). A model without noise gives one image: `n` > 1 "
        "answers 422, also when `model=auto` routes to such a model.",
    )
    seed: Seed | None = Field(
        None,
        description="Models with noise: the same input and seed, the same images. Without a "
        "seed, `n=1` gives the noise's mean (the default, deterministic answer) and `n` > 1 "
        "a random seed the API picks and returns in `X-Seed`. A named model without noise "
        "answers 422; with `model=auto` the seed is dropped when the image goes to one.",
    )
    timeout: float | None = Field(
        None, gt=0, description="Seconds until the deadline; a job past it is not run"
    )
    style: int | None = Field(
        None,
        ge=1,
        le=9,
        description="Drawing style for models conditioned on one (`photo2sketch`: FS2K's "
        "styles 1, 2, 3; `GET /v1/models` lists each model's `input.condition_values`). "
        "Default: the model's default style. With `model=auto` it applies when the image is "
        "routed to a model that takes a style and is dropped otherwise; a named model without "
        "a style answers 422.",
    )


class TranslateJSON(TranslateOptions):
    image: str = Field(..., description="The image file, base64-encoded (data: URLs accepted)")


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., pattern=MODEL_NAME_PATTERN)
    version: StrictVersion | None = None
    n: int = Field(1, ge=1, le=64, description="Images to generate (returned as one grid)")
    seed: int | None = Field(
        None,
        ge=0,
        le=2**63 - 1,
        description="Same seed, same images. Without one the API picks a random seed and "
        "returns it in the `X-Seed` response header; send it back to reproduce the images.",
    )
    class_name: str | None = Field(None, description="For class-conditional models, e.g. `cat`")
    format: OutputFormat = "png"
    timeout: float | None = Field(None, gt=0)


class JobTimings(BaseModel):
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    queue_ms: float | None = None
    compute_ms: float | None = None


class JobError(BaseModel):
    type: ErrorKind
    detail: str


class JobStatus(BaseModel):
    id: str
    state: JobState
    model: str
    version: int | None = Field(None, description="The version that ran it (or was pinned)")
    routed_by: str | None = None
    timings: JobTimings
    batch_size: int | None = None
    error: JobError | None = None
    result_url: str | None = None

    @classmethod
    def of(cls, job: JobRecord) -> JobStatus:
        return cls(
            id=job.id,
            state=job.state,
            model=job.model,
            version=job.served_version or job.version,
            routed_by=job.routed_by or None,
            timings=JobTimings(
                created_at=job.created_at,
                started_at=job.started_at,
                finished_at=job.finished_at,
                queue_ms=job.queue_ms,
                compute_ms=job.compute_ms,
            ),
            batch_size=job.batch_size,
            error=JobError(type=job.error_type, detail=job.error_detail or "")
            if job.error_type
            else None,
            result_url=f"/v1/jobs/{job.id}/result" if job.state is JobState.succeeded else None,
        )


class TranslateResult(BaseModel):
    """``Accept: application/json`` answer of a finished translation or generation."""

    job: JobStatus
    media_type: str
    image: str = Field(..., description="The result image, base64-encoded")


class ProblemFieldError(BaseModel):
    field: str = Field(
        description="The invalid field: a body field (`n`, `model`), or `query.<name>`, "
        "`path.<name>`, `header.<name>`; empty for the body as a whole"
    )
    message: str


class Problem(BaseModel):
    """An error, sent as `application/problem+json` (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description=f"Stable identifier of the kind of error, `{TYPE_PREFIX}<slug>`; the "
        f"slugs (status: title):\n\n{kinds_markdown()}",
        examples=[f"{TYPE_PREFIX}invalid-request"],
    )
    title: str = Field(description="Short summary of the kind of error")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What went wrong this time, and what to do about it")
    instance: str | None = Field(None, description="The request path")
    errors: list[ProblemFieldError] | None = Field(
        None, description="422 on invalid fields: each field and what is wrong with it"
    )
    job_id: str | None = Field(None, description="The job it is about, if any")


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(description="Redis and worker checks, in words")


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    version: int
    task: Task
    architecture: str
    recipe: str
    input: dict[str, Any]
    metrics: dict[str, float]
    available_versions: list[int] = Field(default_factory=list)
    workers: int = 0
    backend: str | None = None  # e.g. "onnx:CPUExecutionProvider:int8"
    quantized: Quantized | None = Field(
        default=None,
        description="Where the version ships an int8 graph: its held-out metrics beside fp32's "
        "and whether it is served on CPU (`accepted`)",
    )


class ModelList(BaseModel):
    models: list[ModelInfo]
    defaults: dict[str, str] = Field(description="What `model=auto` routes to, per task")

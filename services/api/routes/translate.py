"""``POST /v1/translate`` and ``POST /v1/generate``."""

from __future__ import annotations

import time
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from PIL import Image

from services.api import problem_kinds as kinds
from services.api import submit
from services.api.deps import ApiKeyDep, StateDep
from services.api.problems import UNAUTHORIZED, Problem, problem_responses
from services.api.rate_limit import RateLimitDep
from services.api.schemas import GenerateRequest, JobStatus, TranslateOptions
from services.api.uploads import parse_translate
from shared import fitted_input, images
from shared.images import ImageInfo
from shared.jobs import JobRecord, new_job_id
from shared.worker_beat import ServedModel

router = APIRouter(prefix="/v1", tags=["inference"], dependencies=[ApiKeyDep, RateLimitDep])

ROUTING_SIZE = 256  # smallest side the API decodes JPEGs at for validation and auto routing
_LOCATION = {"Location": {"description": "The job to poll", "schema": {"type": "string"}}}


def _responses(
    job_headers: dict[str, Any], problems: dict[int, str]
) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": submit.RESULT_DESCRIPTION,
            "content": submit.RESULT_CONTENT,
            "headers": job_headers,
        },
        202: {
            "description": "Accepted (`Prefer: respond-async` or `?async=true`): poll `Location`",
            "model": JobStatus,
            "headers": {**_LOCATION, **job_headers},
        },
        **problem_responses(problems),
    }


_JOB_PROBLEMS = {
    401: UNAUTHORIZED,
    404: "Unknown model or version",
    429: "Queue full, or this caller is over its rate limit (see Retry-After)",
    500: "The job failed inside the worker",
    503: "No inference worker is running, or Redis is unreachable (see Retry-After)",
    504: "The deadline passed before the job finished",
}
TRANSLATE_RESPONSES = _responses(
    {**submit.JOB_HEADERS, **submit.ROUTED_BY_HEADER, **submit.SEED_HEADER},
    {
        **_JOB_PROBLEMS,
        400: "Unreadable image, malformed multipart body, or `image` not valid base64",
        410: "The job was canceled (a repeated Idempotency-Key can name a canceled job), "
        "or its input or record expired before it ran",
        413: "Image too large (bytes or pixels)",
        415: "Unsupported image format or request body type",
        422: "Invalid fields (e.g. a `style` the model does not take, `n` > 1 or a `seed` "
        "for a model without noise, a bad timeout)",
    },
)
GENERATE_RESPONSES = _responses(
    {**submit.JOB_HEADERS, **submit.SEED_HEADER},
    {
        **_JOB_PROBLEMS,
        410: "The job was canceled (a repeated Idempotency-Key can name a canceled job), "
        "or its record expired",
        422: "Invalid fields, a `class_name` the model lacks, or a model that does not generate",
    },
)
TRANSLATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        **{
                            k: v
                            for k, v in TranslateOptions.model_json_schema()["properties"].items()
                        },
                    },
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/TranslateJSON"}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _condition(
    served: ServedModel | None, model: str, field: str, value: str | None, *, routed: bool
) -> str | None:
    """The condition value to send, or 422 when ``model`` (served) does not take it. A model
    chosen by ``auto`` that takes no such condition simply drops it (a drawing sent with a
    style goes to sketch→photo); an unknown model is the worker's to refuse (404)."""
    if value is None:
        return None
    if served is None:
        return value
    spec = served.input
    if spec.condition != field:
        if routed:
            return None
        detail = f"model {model!r} takes no {field}"
    elif value not in spec.condition_values:
        detail = f"{field} for {model!r} must be one of {', '.join(spec.condition_values)}"
    else:
        return value
    raise Problem.invalid_field(field, detail)


def _variations(
    served: ServedModel | None, model: str, n: int, seed: int | None, *, routed: bool
) -> tuple[int, int | None]:
    """``n`` and the seed to run with. A served model without noise gives one image: ``n`` > 1
    or a seed answers 422 (a model chosen by ``auto`` drops the seed); a model with noise
    asked for ``n`` > 1 without a seed gets a random one (sent back in ``X-Seed``)."""
    if served is not None and not served.input.noise_dim:
        if n > 1:
            raise Problem.invalid_field("n", f"model {model!r} takes no noise: n must be 1")
        if seed is not None and not routed:
            raise Problem.invalid_field("seed", f"model {model!r} takes no noise, so no seed")
        return 1, None
    if n > 1 and seed is None:
        seed = submit.random_seed()
    return n, seed


async def _worker_input(
    served: ServedModel | None, version: int | None, img: Image.Image, info: ImageInfo
) -> bytes | None:
    """The decoded upload fitted to the served model, for the worker to read without decoding
    it again (``shared.fitted_input``); None (store the upload) when the model is not served
    here, another version is pinned, or the decode was reduced below the model's size."""
    if served is None or served.task == "generate" or version not in (None, served.version):
        return None
    spec = served.input
    if spec.kind != "image" or not fitted_input.fits_from(img, info.display_size, spec):
        return None
    return await run_in_threadpool(fitted_input.pack, img, spec)


@router.post(
    "/translate",
    summary="Translate a sketch to a photo, or a photo to a sketch",
    operation_id="translate",
    responses=TRANSLATE_RESPONSES,
    openapi_extra=TRANSLATE_BODY,
    response_class=Response,
)
async def translate(
    request: Request,
    state: StateDep,
    async_: Annotated[
        bool, Query(alias="async", description="Answer 202 at once (like `Prefer: respond-async`)")
    ] = False,
) -> Response:
    data, opts = await parse_translate(request, state)
    s = state.settings
    # a full decode catches truncated files here rather than in a worker; JPEGs decode at
    # a reduced scale (the whole stream is still read), enough for routing
    img, info = await run_in_threadpool(
        partial(
            images.decode_with_info,
            max_bytes=s.max_upload_bytes,
            max_pixels=s.max_image_pixels,
            draft_size=ROUTING_SIZE,
        ),
        data,
    )
    model, routed_by = opts.model, ""
    if model == "auto":
        is_drawing, confidence = await run_in_threadpool(images.looks_like_drawing, img)
        model = s.default_sketch2photo_model if is_drawing else s.default_photo2sketch_model
        routed_by = f"auto: {'drawing' if is_drawing else 'photo'} ({confidence:.2f})"
    style = None if opts.style is None else str(opts.style)
    served = (await state.cluster.get()).models.get(model)  # None: the worker's to refuse
    condition = _condition(served, model, "style", style, routed=bool(routed_by))
    n, seed = _variations(served, model, opts.n, opts.seed, routed=bool(routed_by))
    job = JobRecord(
        id=new_job_id(),
        model=model,
        version=opts.version,
        format=opts.format,
        keep_aspect=opts.keep_aspect,
        output_size=opts.output_size,
        routed_by=routed_by,
        n=n,
        seed=seed,
        condition=condition,
        input_width=info.display_size[0],
        input_height=info.display_size[1],
        created_at=time.time(),
        deadline=submit.deadline_for(state, request, opts.timeout),
    )
    fitted = await _worker_input(served, opts.version, img, info)
    job_input = submit.JobInput(upload=data, stored=data if fitted is None else fitted)
    is_async = submit.wants_async(request, async_)
    return await submit.run(state, request, job, job_input, is_async=is_async)


@router.post(
    "/generate",
    summary="Generate images from noise (unconditional GAN or VAE models)",
    description="The seed the images came from is in `X-Seed` (with no `seed` in the request "
    "the API picks a random one): send it as `seed` to get the same images again.",
    operation_id="generate",
    responses=GENERATE_RESPONSES,
    response_class=Response,
)
async def generate(
    request: Request,
    state: StateDep,
    body: GenerateRequest,
    async_: Annotated[
        bool, Query(alias="async", description="Answer 202 at once (like `Prefer: respond-async`)")
    ] = False,
) -> Response:
    view = await state.cluster.get()
    served = view.models.get(body.model)
    if served is not None:
        if served.task != "generate":
            raise Problem(
                kinds.WRONG_TASK,
                f"model {body.model!r} is a {served.task} model; use /v1/translate",
            )
        classes = served.input.class_names
        if body.class_name is not None and body.class_name not in classes:
            raise Problem.invalid_field(
                "class_name", f"class_name must be one of {classes or 'none (unconditional model)'}"
            )
    job = JobRecord(
        id=new_job_id(),
        kind="generate",
        model=body.model,
        version=body.version,
        format=body.format,
        n=body.n,
        seed=body.seed if body.seed is not None else submit.random_seed(),
        class_name=body.class_name,
        created_at=time.time(),
        deadline=submit.deadline_for(state, request, body.timeout),
    )
    return await submit.run(state, request, job, None, is_async=submit.wants_async(request, async_))

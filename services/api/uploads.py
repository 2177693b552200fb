"""Reading a translate request: multipart, JSON (base64) or a raw image body, plus the
options from form fields, JSON fields or the query string, with the upload limit enforced
while reading (never after)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from services.api import problem_kinds as kinds
from services.api.deps import AppState
from services.api.limits import body_limit
from services.api.problems import Problem
from services.api.schemas import TranslateJSON, TranslateOptions

OPTION_FIELDS = tuple(TranslateOptions.model_fields)


def _too_large(size: int, limit: int) -> Problem:
    return Problem(kinds.IMAGE_TOO_LARGE, f"upload is {size} bytes; the limit is {limit} bytes")


async def _read_upload(upload: UploadFile, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := await upload.read(1 << 20):
        total += len(chunk)
        if total > limit:
            raise _too_large(total, limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(total, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _options(fields: dict[str, Any], model: type[TranslateOptions]) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise Problem.from_validation(exc) from None


async def parse_translate(request: Request, state: AppState) -> tuple[bytes, TranslateOptions]:
    """Image bytes and options from multipart, JSON or a raw image body (+ query options)."""
    limit = state.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    json_limit = body_limit(limit)  # base64 overhead + fields
    if declared and declared.isdigit() and int(declared) > json_limit:
        raise _too_large(int(declared), limit)
    fields: dict[str, Any] = {k: v for k, v in request.query_params.items() if k in OPTION_FIELDS}
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=16)
        except MultiPartException as exc:
            raise Problem(kinds.MALFORMED_BODY, str(exc)) from None
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise Problem.invalid_field("image", "multipart field `image` (a file) is required")
        data = await _read_upload(upload, limit)
        fields |= {k: v for k, v in form.items() if k != "image" and isinstance(v, str)}
        return data, _options(fields, TranslateOptions)
    if ctype == "application/json":
        body = await _read_body(request, json_limit)
        try:
            parsed: TranslateJSON = TranslateJSON.model_validate_json(body)
        except ValidationError as exc:
            raise Problem.from_validation(exc) from None
        encoded = (
            parsed.image.partition(",")[2] if parsed.image.startswith("data:") else parsed.image
        )
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise Problem(kinds.UNREADABLE_IMAGE, "`image` is not valid base64") from None
        if len(data) > limit:
            raise _too_large(len(data), limit)
        opts = _options(
            fields | parsed.model_dump(exclude={"image"}, exclude_unset=True), TranslateOptions
        )
        return data, opts
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return await _read_body(request, limit), _options(fields, TranslateOptions)
    raise Problem(
        kinds.UNSUPPORTED_MEDIA_TYPE,
        'send multipart/form-data with an `image` file field, JSON {"image": base64}, '
        f"or the image itself as the body; got {ctype or 'no Content-Type'}",
    )

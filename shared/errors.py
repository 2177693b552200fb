"""Why a job failed or an image was refused: the ``error_type`` a worker stores in a job.

The API maps each kind to its HTTP problem (``services.api.problem_kinds``); a job's
``GET /v1/jobs/{id}`` shows the kind as ``error.type``.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    unreadable = "unreadable"  # the image could not be decoded
    too_large = "too_large"  # bytes or pixels over the limit
    unsupported_format = "unsupported_format"
    model_not_found = "model_not_found"  # no such model or version (or it failed its checks)
    invalid_condition = "invalid_condition"  # the model does not take the job's condition
    deadline = "deadline"  # the job's deadline passed before or while it ran
    input_expired = "input_expired"  # the input bytes expired before the job ran
    invalid_output = "invalid_output"  # NaN or infinite values in the model's output
    internal = "internal"  # anything else (the worker logged it)


# the kinds an ImageError can have
IMAGE_ERROR_KINDS = frozenset(
    {ErrorKind.unreadable, ErrorKind.too_large, ErrorKind.unsupported_format}
)

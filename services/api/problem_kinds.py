"""Every kind of error the API answers: its ``type`` URI, HTTP status and title (one table).

A :class:`~services.api.problems.Problem` is one of these kinds plus a ``detail`` about this
occurrence. ``FAILURES`` maps why a job failed (``shared.errors.ErrorKind``, stored by the
worker) to the kind its result answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import ErrorKind

TYPE_PREFIX = "urn:sketch2image:problem:"


@dataclass(frozen=True)
class ProblemKind:
    slug: str
    status: int
    title: str  # the same for every occurrence (RFC 9457); the detail says what happened

    @property
    def type(self) -> str:
        return TYPE_PREFIX + self.slug


KINDS: list[ProblemKind] = []  # every kind, in the order of this module


def _kind(slug: str, status: int, title: str) -> ProblemKind:
    kind = ProblemKind(slug, status, title)
    KINDS.append(kind)
    return kind


UNREADABLE_IMAGE = _kind("unreadable-image", 400, "The image could not be read")
MALFORMED_BODY = _kind("malformed-body", 400, "Malformed multipart body")
UNAUTHORIZED = _kind("unauthorized", 401, "Missing or wrong API key")
ADMIN_DISABLED = _kind("admin-disabled", 403, "Admin endpoints are disabled")
NOT_FOUND = _kind("not-found", 404, "Not Found")
UNKNOWN_MODEL = _kind("unknown-model", 404, "Unknown model or version")
UNKNOWN_JOB = _kind("unknown-job", 404, "Unknown job")
UNKNOWN_TRAINING = _kind("unknown-training", 404, "Unknown training run")
METHOD_NOT_ALLOWED = _kind("method-not-allowed", 405, "Method Not Allowed")
JOB_NOT_FINISHED = _kind("job-not-finished", 409, "The job has not finished")
JOB_RUNNING = _kind("job-running", 409, "The job is already running")
JOB_FINISHED = _kind("job-finished", 409, "The job already finished")
TRAINING_FINISHED = _kind("training-finished", 409, "The training run already finished")
JOB_CANCELED = _kind("job-canceled", 410, "The job was canceled")
JOB_EXPIRED = _kind("job-expired", 410, "The job record expired")
INPUT_EXPIRED = _kind("input-expired", 410, "The job's input expired before it ran")
RESULT_EXPIRED = _kind("result-expired", 410, "The result has expired")
IMAGE_TOO_LARGE = _kind("image-too-large", 413, "The image is too large")
UNSUPPORTED_FORMAT = _kind("unsupported-format", 415, "The image format is not supported")
UNSUPPORTED_MEDIA_TYPE = _kind("unsupported-media-type", 415, "Unsupported request body")
INVALID_REQUEST = _kind("invalid-request", 422, "Some fields are invalid")
IDEMPOTENCY_KEY_REUSED = _kind(
    "idempotency-key-reused", 422, "The Idempotency-Key was used for another request"
)
WRONG_TASK = _kind("wrong-task", 422, "This model does not generate")
INVALID_DATASET = _kind("invalid-dataset", 422, "The dataset path is not acceptable")
QUEUE_FULL = _kind("queue-full", 429, "Too many queued jobs")
RATE_LIMITED = _kind("rate-limited", 429, "Too many requests from this caller")
HEADERS_TOO_LARGE = _kind("headers-too-large", 431, "Request header fields too large")
INTERNAL_ERROR = _kind("internal-error", 500, "Internal error")
INVALID_MODEL_OUTPUT = _kind("invalid-model-output", 500, "The model gave an invalid output")
SERVICE_UNAVAILABLE = _kind(
    "service-unavailable", 503, "The service cannot take the request right now"
)
STORAGE_FULL = _kind("storage-full", 503, "The job store is full")
NO_TRAINER = _kind("no-trainer", 503, "No trainer service is running")
DEADLINE_EXCEEDED = _kind("deadline-exceeded", 504, "The request's deadline passed")
# any other HTTP error the framework raises: the answer carries that error's status
HTTP_ERROR = _kind("http-error", 400, "HTTP error")

# why a job failed -> what its result answers
FAILURES: dict[ErrorKind, ProblemKind] = {
    ErrorKind.unreadable: UNREADABLE_IMAGE,
    ErrorKind.too_large: IMAGE_TOO_LARGE,
    ErrorKind.unsupported_format: UNSUPPORTED_FORMAT,
    ErrorKind.model_not_found: UNKNOWN_MODEL,
    ErrorKind.invalid_condition: INVALID_REQUEST,
    ErrorKind.deadline: DEADLINE_EXCEEDED,
    ErrorKind.input_expired: INPUT_EXPIRED,
    ErrorKind.invalid_output: INVALID_MODEL_OUTPUT,
    ErrorKind.internal: INTERNAL_ERROR,
}


def kinds_markdown() -> str:
    """The table as a Markdown list, for the OpenAPI schema of a problem's ``type``."""
    return "\n".join(f"* `{k.slug}` ({k.status}): {k.title}" for k in KINDS)

"""Idempotency-Key: the same key from the same caller returns the same job.

The key is stored as ``s2i:idem:<caller>:<key>`` -> ``"<job id> <fingerprint>"`` for
``S2I_IDEMPOTENCY_TTL_S``. The caller is a hash of the API key presented, so two callers never
see each other's results; the fingerprint hashes the input and the options, so a key reused
for another request is refused (422) instead of answering with the first request's image.
"""

from __future__ import annotations

import hashlib
import json

from fastapi import Request

from services.api import problem_kinds as kinds
from services.api.deps import AppState
from services.api.problems import Problem
from shared.jobs import JobRecord, JobState, idempotency_key

FINGERPRINT_FIELDS = {
    "kind", "model", "version", "format", "keep_aspect", "output_size", "condition", "n",
    "seed", "class_name",
}  # fmt: skip


def caller_scope(request: Request) -> str:
    """Who is asking, for scoping Idempotency-Keys: a hash of the API key presented (as
    ``deps.require_api_key`` read it)."""
    key: str | None = getattr(request.state, "api_key", None)
    if not key:
        return "anonymous"
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def request_fingerprint(job: JobRecord, data: bytes | None) -> str:
    """What makes two requests "the same" for an Idempotency-Key: the input and the options."""
    options = job.model_dump(include=FINGERPRINT_FIELDS)
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    digest.update(data or b"")
    return digest.hexdigest()[:32]


async def claim(
    state: AppState, job: JobRecord, data: bytes | None, idem_key: str, caller: str
) -> JobRecord | None:
    """The earlier job of this caller's key, or None when ``job`` now owns the key.

    Keys are scoped per caller (their API key), so two callers never share results. The same
    key with another input or other options is a 422; a key whose job expired without
    running may be used again (a retry after a 504 runs the job once more)."""
    if len(idem_key) > 255:
        raise Problem.invalid_field(
            "header.idempotency-key", "Idempotency-Key must be at most 255 characters"
        )
    key = idempotency_key(f"{caller}:{idem_key}")
    mine = f"{job.id} {request_fingerprint(job, data)}"
    ttl = state.settings.idempotency_ttl_s
    if await state.redis.set(key, mine, nx=True, ex=ttl):
        return None
    stored = await state.redis.get(key) or b""
    text = stored.decode() if isinstance(stored, bytes) else str(stored)
    earlier_id, _, fingerprint = text.partition(" ")
    if fingerprint and fingerprint != mine.partition(" ")[2]:
        raise Problem(
            kinds.IDEMPOTENCY_KEY_REUSED,
            "this key was sent before with a different image or options; use a new key",
        )
    earlier = await state.jobs.read(earlier_id) if earlier_id else None
    if earlier is None or (earlier.state is JobState.expired and earlier.started_at is None):
        await state.redis.set(key, mine, ex=ttl)  # gone, or never ran: this request runs
        return None
    return earlier

"""Request bodies are refused once they pass the limit, not after they have been read.

``BodySizeLimit`` (pure ASGI) counts the bytes of every request body as the app reads them and
raises a 413 problem as soon as the count passes ``max_bytes``: a chunked upload with no
Content-Length (or a lying one) costs at most the limit in memory and temp files, never the
whole stream. The largest legal body is a base64 JSON image: ``body_limit(max_upload_bytes)``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api import problem_kinds as kinds
from services.api.problems import Problem

JSON_OVERHEAD_BYTES = 65536  # the other JSON or form fields beside the image


def body_limit(max_upload_bytes: int) -> int:
    """The largest body a legal request can have: the image base64-encoded, plus fields."""
    return max_upload_bytes * 4 // 3 + JSON_OVERHEAD_BYTES


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise Problem(
                        kinds.IMAGE_TOO_LARGE,
                        f"the request body passed {self.max_bytes} bytes; the image limit is "
                        "S2I_MAX_UPLOAD_BYTES",
                    )
            return message

        await self.app(scope, counting_receive, send)

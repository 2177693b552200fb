"""Security headers on every response (a pure ASGI middleware: no per-request task overhead).

- ``X-Content-Type-Options: nosniff``: browsers trust the declared image and JSON types;
- ``Referrer-Policy: no-referrer``;
- ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: no page of the service can be
  framed (clickjacking);
- a ``Content-Security-Policy`` that allows only the service's own scripts, styles and images
  (plus inline ones, which Swagger UI's and the web page's bootstraps use, ``blob:``/``data:``
  images for results shown in the page, and ``blob:`` workers for ReDoc).

The server banner is switched off where uvicorn starts (``--no-server-header``).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; worker-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CSP.encode()),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

"""``python -m services.api.server``: the API under uvicorn with the limits a public endpoint
needs (what ``make run``, the image, compose and k8s start).

uvicorn alone lets a client hold a connection for as long as it likes by sending its request
slowly (slowloris) and, with httptools, accepts headers of any size. Here the h11 protocol
gets deadlines from ``Settings``:

- the request line and headers must arrive within ``http_head_timeout_s`` of the connection
  opening (or of the first byte of a keep-alive connection's next request), and may be at
  most ``http_max_head_bytes`` (431 problem+json beyond, however the bytes were split);
- once the headers are in, the whole body must arrive within ``http_body_timeout_s`` (the app
  then sees a disconnect: 499, nothing queued);
- at most ``http_max_connections`` connections or requests at once: each request beyond gets
  503; idle keep-alive connections close after ``http_keep_alive_s``; no ``Server`` header.

A connection past a deadline is closed without a response: the client was not sending one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from http import HTTPStatus

import h11
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from services.api.problem_kinds import HEADERS_TOO_LARGE
from services.api.problems import PROBLEM_MEDIA_TYPE, Problem
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

APP = "services.api.main:app"
HEAD_END = b"\r\n\r\n"


def head_too_large_response(limit: int) -> bytes:
    """The whole 431 answer (the app never sees this request): the problem as the API's
    handlers render every problem, behind a hand-written status line and headers."""
    problem = Problem(
        HEADERS_TOO_LARGE,
        f"the request line and headers passed {limit} bytes (S2I_HTTP_MAX_HEAD_BYTES)",
    )
    body = bytes(problem.response().body)
    head = (
        f"HTTP/1.1 {problem.status} {HTTPStatus(problem.status).phrase}\r\n"
        f"content-type: {PROBLEM_MEDIA_TYPE}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head and body."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.max_head_bytes = settings.http_max_head_bytes
        self.head_timeout_s = settings.http_head_timeout_s
        self.body_timeout_s = settings.http_body_timeout_s
        self.deadline: asyncio.TimerHandle | None = None
        self.deadline_for: object = None  # the h11 state it guards

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.watch()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self.head_too_large(data):
            log.info("refused a request from %s: its head passed %d bytes", self.client,
                     self.max_head_bytes)  # fmt: skip
            self.transport.write(head_too_large_response(self.max_head_bytes))
            self.transport.close()
            return
        super().data_received(data)
        self.watch()

    def head_too_large(self, data: bytes) -> bool:
        """Would the head, with ``data`` added, pass the limit? (h11 checks only a head that
        is still incomplete after a read, not one that arrives whole.)"""
        buffered = self.conn.trailing_data[0] + data
        end = buffered.find(HEAD_END, 0, self.max_head_bytes + len(HEAD_END))
        return end < 0 and len(buffered) > self.max_head_bytes

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        super().connection_lost(exc)

    def watch(self) -> None:
        """Arm the deadline of the phase the client is in: head (IDLE) or body (SEND_BODY)."""
        state = self.conn.their_state
        if state is self.deadline_for:
            return
        self.disarm()
        if state is h11.IDLE or state is h11.SEND_BODY:
            timeout = self.head_timeout_s if state is h11.IDLE else self.body_timeout_s
            self.deadline = self.loop.call_later(timeout, self.expire, state)
            self.deadline_for = state

    def disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline, self.deadline_for = None, None

    def expire(self, state: object) -> None:
        self.deadline, self.deadline_for = None, None
        if self.conn.their_state is state and not self.transport.is_closing():
            phase = "headers" if state is h11.IDLE else "body"
            log.info("closed a connection from %s: its %s came too slowly", self.client, phase)
            self.transport.close()


def server_config(settings: Settings, host: str, port: int) -> Config:
    return Config(
        APP,
        host=host,
        port=port,
        http=DeadlineH11Protocol,
        h11_max_incomplete_event_size=settings.http_max_head_bytes,
        limit_concurrency=settings.http_max_connections,
        timeout_keep_alive=settings.http_keep_alive_s,
        server_header=False,
        access_log=False,
        log_level=settings.log_level.lower(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.api.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    uvicorn.Server(server_config(get_settings(), args.host, args.port)).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

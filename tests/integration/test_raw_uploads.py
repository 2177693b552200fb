"""Uploads as a hostile or flaky client sends them, over a raw socket to the real API."""

from __future__ import annotations

import select
import socket
import time

import httpx
import pytest

from services.api.limits import body_limit
from services.local import LocalStack
from shared.settings import Settings
from tests.integration.test_batching_and_reload import metric

pytestmark = pytest.mark.integration

MIB = 1 << 20
PREAMBLE = (
    b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
    b"Content-Type: image/png\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_a_chunked_upload_is_refused_once_it_passes_the_limit(stack: LocalStack) -> None:
    limit = body_limit(Settings().max_upload_bytes)
    with socket.socket() as s:
        # a small send buffer: what the kernel holds for us is then ~64 KiB, not the MiBs that
        # autotuning grows to, so `sent` stays near what the API read, however slow it answers
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        s.settimeout(30)
        s.connect(("127.0.0.1", stack.api_port))
        s.sendall(
            b"POST /v1/translate HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n" + chunk(PREAMBLE)
        )
        sent, block = 0, chunk(b"\0" * MIB)
        while sent < 200 * MIB:  # what the client would send: 200 MB with no Content-Length
            if select.select([s], [], [], 0)[0]:
                break  # the server has answered
            try:
                s.sendall(block)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += MIB
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer
    assert sent < limit + 8 * MIB  # refused near the limit, not after the whole stream


def test_a_client_that_leaves_mid_upload_is_counted_not_logged_as_an_error(
    stack: LocalStack, client: httpx.Client
) -> None:
    log = stack.var_dir / "logs" / "api.log"
    before = log.stat().st_size
    gone = metric(client, "s2i_http_requests_total", route="/v1/translate", status="499")
    errors = metric(client, "s2i_http_requests_total", route="/v1/translate", status="500")
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", stack.api_port), timeout=10) as s:
            s.sendall(
                b"POST /v1/translate HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\n" + PREAMBLE + b"\0" * 1000
            )
    deadline = time.monotonic() + 20
    while metric(client, "s2i_http_requests_total", route="/v1/translate", status="499") < gone + 3:
        assert time.monotonic() < deadline, "the disconnects were not counted as 499"
        time.sleep(0.2)
    new = log.read_bytes()[before:].decode(errors="replace")
    assert "Traceback" not in new
    assert new.count("client closed the connection") == 3
    assert metric(client, "s2i_http_requests_total", route="/v1/translate", status="500") == errors

"""What one client can hold on the API's HTTP server (``services/api/server.py``), on a real
server process: slow heads and bodies are cut off, oversized heads refused, connections
capped, and no ``Server`` banner."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from services.local import free_port, wait_until

HEAD_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 2.0
MAX_CONNECTIONS = 4


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {
        **os.environ,
        "S2I_REDIS_URL": redis_url,
        "S2I_HTTP_HEAD_TIMEOUT_S": str(HEAD_TIMEOUT_S),
        "S2I_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "S2I_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.api.server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/healthz").status_code == 200, 60, "api")
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(20)


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed the connection without a response, or None."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        data = sock.recv(65536)
    except TimeoutError:
        return None
    return time.monotonic() - start if data == b"" else None


def test_a_request_head_sent_slowly_is_cut_off(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes the headers
        waited = closed_within(sock, HEAD_TIMEOUT_S + 5)
    assert waited is not None
    assert waited < HEAD_TIMEOUT_S + 2


def test_a_connection_that_sends_nothing_is_cut_off(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        assert closed_within(sock, HEAD_TIMEOUT_S + 5) is not None


def test_a_body_sent_slowly_is_cut_off(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"image": '
        )
        waited = closed_within(sock, BODY_TIMEOUT_S + 5)
    assert waited is not None
    assert waited < BODY_TIMEOUT_S + 2


@pytest.mark.parametrize("pieces", [1, 40], ids=["whole", "in-pieces"])
def test_an_oversized_head_gets_431(server: tuple[str, int], pieces: int) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 64 * 1024 + b"\r\n\r\n"
    step = len(head) // pieces + 1
    with connect(server) as sock:
        for i in range(0, len(head), step):
            try:
                sock.sendall(head[i : i + step])
            except OSError:
                break  # the server closed the connection
        reply = sock.recv(65536)
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.split()[1] == b"431"
    assert b"application/problem+json" in rest
    assert b"headers-too-large" in rest


def test_a_large_body_in_the_first_read_is_not_mistaken_for_a_large_head(
    server: tuple[str, int],
) -> None:
    host, port = server
    response = httpx.post(f"http://{host}:{port}/v1/translate", content=b"x" * 200_000,
                          headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code in (400, 422)  # the app's answer about the body


def test_connections_past_the_cap_get_503_and_the_server_recovers(
    server: tuple[str, int],
) -> None:
    host, port = server
    idle = [connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in idle:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # heads in progress: held connections
        time.sleep(0.2)
        assert httpx.get(f"http://{host}:{port}/healthz").status_code == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    fine = httpx.get(f"http://{host}:{port}/healthz")
    assert fine.status_code == 200
    assert "server" not in fine.headers

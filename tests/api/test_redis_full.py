"""A Redis at its memory limit (maxmemory + noeviction, as the k8s Redis is configured)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import OutOfMemoryError

from tests.api.test_admission import fake_heartbeat, make_client, post
from tests.conftest import running_redis


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[str]:
    with running_redis(tmp_path, "--maxmemory-policy", "noeviction") as url:
        yield url


def test_a_full_redis_gives_503_not_ready_and_no_payload_in_the_logs(
    full_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    redis = Redis.from_url(full_redis)
    fake_heartbeat(redis, {"sketch2photo": 1})
    with make_client(full_redis) as client:
        assert client.get("/readyz").status_code == 200
        redis.config_set("maxmemory", "1")  # below what Redis already uses: every write refused
        with pytest.raises(OutOfMemoryError):
            redis.set("probe", "1")
        with caplog.at_level(logging.INFO):
            r = post(client)
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("storage-full"), r.json()
        assert int(r.headers["retry-after"]) > 0
        logged = caplog.text
        assert "maxmemory" in logged
        assert "PNG" not in logged  # no image bytes in any log line
        assert "\\x89" not in logged
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "refusing writes" in ready.json()["checks"]["redis"]
        redis.config_set("maxmemory", "0")
        assert client.get("/readyz").status_code == 200  # ready again once there is room

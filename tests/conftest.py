"""Fixtures shared by the whole suite: a real redis-server, and a whole running stack
(redis-server, a Celery worker and uvicorn as subprocesses) for integration and browser tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from redis import Redis

from services.local import LocalStack, free_port, wait_until
from services.local_redis import redis_server_args
from shared.registry import Registry
from tests.integration import models


@pytest.fixture(scope="module")
def torch_one_thread() -> Iterator[None]:
    """One intra-op torch thread for a module of tiny nets: fastest, and spinning threads
    stall on a busy 2-core machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@contextmanager
def running_redis(data: Path, *extra_args: str) -> Iterator[str]:
    """A loopback redis-server (with ``extra_args``) for the block; yields its URL."""
    port = free_port()
    args = [*redis_server_args(port, data), *extra_args]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: Redis.from_url(url).ping(), 15, "redis-server")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[Redis]:
    """The test Redis, emptied before and after the test."""
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


ADMIN_KEY = "test-admin-key"
STACK_ENV = {
    "S2I_ADMIN_API_KEYS": f'["{ADMIN_KEY}"]',
    "S2I_MAX_BATCH_SIZE": "16",
    "S2I_MAX_QUEUE_DELAY_MS": "25",
    "S2I_RELOAD_INTERVAL_S": "0.3",
    "S2I_HEARTBEAT_INTERVAL_S": "0.5",
    "S2I_WORKER_HEARTBEAT_TTL_S": "5",
    "S2I_INTRA_OP_THREADS": "1",
    "S2I_LOG_LEVEL": "INFO",
}


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    registry = Registry(root)
    models.publish(registry, "sketch2photo", seed=1, task="sketch2photo")
    models.publish(registry, "photo2sketch", seed=2, task="photo2sketch")
    return root


@contextmanager
def running_stack(local: LocalStack) -> Iterator[LocalStack]:
    """``local`` started and serving inside the block, stopped after it; the tail of each of
    its logs is printed when it fails to start."""
    try:
        local.start()
        local.wait_ready(timeout=120)
        yield local
    except Exception:
        for log in sorted((local.var_dir / "logs").glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")  # noqa: T201
        raise
    finally:
        local.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, model_root: Path) -> Iterator[LocalStack]:
    var = tmp_path_factory.mktemp("stack")
    local = LocalStack(
        var_dir=var,
        api_port=free_port(),
        env={**STACK_ENV, "S2I_MODEL_ROOT": str(model_root)},
        bootstrap=False,
    )
    with running_stack(local):
        yield local


@pytest.fixture
def client(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=60) as c:
        yield c


@pytest.fixture
def registry(model_root: Path) -> Registry:
    return Registry(model_root)

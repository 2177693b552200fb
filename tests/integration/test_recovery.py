"""Redis as a store and crashes as a machine has them (issue 9, rows 3, 4 and 13): a real
redis-server (append-only file on, as deployed), a real Celery worker and the API, as
processes; a worker SIGKILLed mid-burst, Redis restarted on its port, keys scanned after."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import httpx
import pytest
from redis import Redis

from services.local import LocalStack, free_port, wait_until
from services.local_redis import redis_server_args
from shared.jobs import EVENTS_CHANNEL, RUNNING_JOBS_KEY, job_key, result_key
from shared.settings import get_settings
from tests.conftest import STACK_ENV, running_stack
from tests.images import sketch_png

pytestmark = pytest.mark.integration

RESULT_TTL_S = 120
HEARTBEAT_TTL_S = 2
# kombu's own keys (besides its "_kombu.*" queue bindings): the queues, and what workers took
# (emptied by their acks)
BROKER_KEYS = {"s2i.inference", "s2i.training", "unacked", "unacked_index"}


class RedisServer:
    """A redis-server on a fixed port that a test can restart (AOF on: data survives)."""

    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.data = data
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        args = [*redis_server_args(self.port, self.data), "--appendonly", "yes"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        wait_until(lambda: Redis.from_url(self.url).ping(), 15, "redis-server")
        return proc

    def restart(self) -> None:
        self.stop()
        self.proc = self._start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("recovery-redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def recovery_stack(
    tmp_path_factory: pytest.TempPathFactory, model_root: Path, redis_server: RedisServer
) -> Iterator[LocalStack]:
    var = tmp_path_factory.mktemp("recovery-stack")
    env = {
        **STACK_ENV,
        "S2I_MODEL_ROOT": str(model_root),
        "S2I_WORKER_HEARTBEAT_TTL_S": str(HEARTBEAT_TTL_S),
        "S2I_RESULT_TTL_S": str(RESULT_TTL_S),
        "S2I_WORKER_CONCURRENCY": "8",
    }
    local = LocalStack(
        var_dir=var,
        api_port=free_port(),
        redis_url=redis_server.url,
        trainer=False,
        env=env,
        bootstrap=False,
    )
    with running_stack(local):
        yield local


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    client.close()


@cache
def big_sketch() -> bytes:
    return sketch_png(3, size=1024)


def translate(base: str, *, is_async: bool = False, slow: bool = False) -> httpx.Response:
    """One translation; ``slow``: a 1024 px sketch answered at its own size (decoding,
    resizing and encoding a megapixel image per job: 40 jobs take seconds on any machine,
    so a test can catch some of them running)."""
    return httpx.post(
        f"{base}/v1/translate",
        params={"async": "true"} if is_async else {},
        files={"image": ("s.png", big_sketch() if slow else sketch_png(3))},
        data={"model": "sketch2photo", **({"output_size": "input"} if slow else {})},
        timeout=60,
    )


def in_parallel(n: int, fn: Callable[[], httpx.Response]) -> list[httpx.Response]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: fn(), range(n)))


class Events:
    """The ids published on the job events channel while the block runs."""

    def __init__(self, redis: Redis) -> None:
        self.ids: list[str] = []
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(EVENTS_CHANNEL)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.2)
            if message is not None:
                self.ids.append(message["data"].decode())

    def close(self) -> None:
        time.sleep(0.5)  # the last events in flight
        self._stop.set()
        self._thread.join(5)
        self._pubsub.close()


def states(redis: Redis, ids: list[str]) -> Counter[str]:
    return Counter((redis.hget(job_key(i), "state") or b"gone").decode() for i in ids)


def test_a_killed_workers_jobs_run_on_the_next_worker_once_each(
    recovery_stack: LocalStack, redis: Redis
) -> None:
    stack = recovery_stack
    events = Events(redis)
    accepted = in_parallel(40, lambda: translate(stack.base_url, is_async=True, slow=True))
    assert [r.status_code for r in accepted] == [202] * 40
    ids = [r.json()["id"] for r in accepted]
    deadline = time.monotonic() + 30
    while redis.zcard(RUNNING_JOBS_KEY) == 0:  # a tight poll: a batch can take 50 ms
        assert time.monotonic() < deadline, f"no job started in 30 s: {states(redis, ids)}"
        time.sleep(0.005)
    worker = stack.procs["worker0"]
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    killed_at = time.monotonic()
    running_when_killed = states(redis, ids)["running"]
    assert running_when_killed > 0

    stack.start_worker(0)
    try:
        wait_until(lambda: states(redis, ids)["succeeded"] == 40, 90, "every job to succeed")
    except TimeoutError as exc:
        records = {i: redis.hgetall(job_key(i)) for i in ids}
        left = {i: r for i, r in records.items() if r.get(b"state") != b"succeeded"}
        raise AssertionError(f"not succeeded after 90 s: {left}") from exc
    recovered_in = time.monotonic() - killed_at
    events.close()

    assert states(redis, ids) == {"succeeded": 40}
    assert Counter(events.ids) == Counter(ids)  # each job reported exactly once
    attempts = [int(redis.hget(job_key(i), "attempts") or 0) for i in ids]
    assert attempts.count(2) >= running_when_killed  # the killed runs ran again
    assert redis.zcard(RUNNING_JOBS_KEY) == 0  # none left running
    assert recovered_in < 60  # a new worker's start-up, then seconds


def test_a_job_whose_message_the_broker_lost_runs_once_a_worker_is_up(
    recovery_stack: LocalStack, redis: Redis
) -> None:
    stack = recovery_stack
    worker = stack.procs["worker0"]
    os.kill(worker.pid, signal.SIGKILL)  # no worker takes the message meanwhile
    worker.wait(10)
    job_id = translate(stack.base_url, is_async=True).json()["id"]
    # what a worker killed between popping a message and recording it as unacked leaves
    message = json.loads(redis.lpop(get_settings().inference_queue))
    assert json.loads(base64.b64decode(message["body"]))[0] == [job_id]

    stack.start_worker(0)

    wait_until(lambda: states(redis, [job_id])["succeeded"] == 1, 60, "the job to succeed")
    assert int(redis.hget(job_key(job_id), "attempts") or 0) == 1


def test_jobs_sent_after_a_redis_restart_get_no_503(
    recovery_stack: LocalStack, redis_server: RedisServer
) -> None:
    stack = recovery_stack
    warm = in_parallel(16, lambda: translate(stack.base_url))  # pooled API connections
    assert [r.status_code for r in warm] == [200] * 16
    redis_server.restart()  # every pooled connection is now closed

    after = in_parallel(40, lambda: translate(stack.base_url))

    assert Counter(r.status_code for r in after) == {200: 40}


def test_every_key_expires_inputs_go_when_jobs_end_and_metrics_show_redis_memory(
    recovery_stack: LocalStack, redis: Redis
) -> None:
    stack = recovery_stack
    done = in_parallel(12, lambda: translate(stack.base_url))
    assert [r.status_code for r in done] == [200] * 12
    queued = [translate(stack.base_url, is_async=True).json()["id"] for _ in range(4)]
    wait_until(lambda: states(redis, queued)["succeeded"] == 4, 30, "async jobs")

    keys = [k.decode() for k in redis.scan_iter(count=1000)]
    no_ttl = {k for k in keys if redis.ttl(k) < 0 and not k.startswith("_kombu.")}
    assert no_ttl <= BROKER_KEYS, no_ttl - BROKER_KEYS
    assert not [k for k in keys if k.startswith("s2i:input:")]  # gone when each job ended
    results = {k for k in keys if k.startswith("s2i:result:")}
    answered = [r.headers["x-job-id"] for r in done]
    assert {result_key(i) for i in queued} <= results  # async: kept until fetched or expired
    assert not {result_key(i) for i in answered} & results  # sync: taken when answered
    assert all(0 < redis.ttl(k) <= RESULT_TTL_S for k in results)
    for job_id in answered + queued:
        assert 0 < redis.ttl(job_key(job_id)) <= RESULT_TTL_S  # finished: kept like results

    metrics = httpx.get(f"{stack.base_url}/metrics").text
    used = [line for line in metrics.splitlines() if line.startswith("s2i_redis_used_memory_bytes")]
    assert len(used) == 1
    assert float(used[0].split()[-1]) > 1_000_000

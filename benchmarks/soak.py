"""``python -m benchmarks.soak``: the whole service under steady load for minutes, on loopback.

Starts the local stack (``make run``'s: Redis, one worker, the API) with the bundled models in
a temporary folder and drives it with ``--clients`` closed-loop clients for ``--seconds``:
three requests in four are synchronous translations, one in four is an async job whose
result is then fetched. Every ``--every`` seconds it samples the resident memory of the API
and the worker and Redis's ``used_memory``; at the end it lists the keys without a TTL (the
broker's queue and bookkeeping keys aside) and every answer that was not a success.

Memory is "flat" when, after the warm-up (the first quarter), it grows by no more than a few
MB: ``tests/integration/test_soak.py`` runs a short version and asserts exactly that.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis import Redis

from benchmarks.common import (
    load_average,
    machine_info,
    markdown_table,
    memory_mb,
    print_machine,
)
from services.local import LocalStack, free_port

log = logging.getLogger(__name__)

BROKER_KEYS = ("s2i.inference", "s2i.training", "unacked", "_kombu.")  # kombu's own, no TTL
PROCESSES = ("api", "worker0")


@dataclass
class Sample:
    at_s: float
    rss_mb: dict[str, float]
    redis_mb: float
    requests: int


@dataclass
class SoakReport:
    seconds: float
    requests: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    samples: list[Sample] = field(default_factory=list)
    keys_without_ttl: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, status: str) -> None:
        with self.lock:
            self.requests += 1
            if status != "200":
                self.failures[status] += 1

    def growth_after_warmup(self) -> dict[str, float]:
        """MB gained per process (and by Redis) from the end of the warm-up to the end."""
        warm = next(s for s in self.samples if s.at_s >= self.seconds / 4)
        last = self.samples[-1]
        grown = {name: last.rss_mb[name] - warm.rss_mb[name] for name in last.rss_mb}
        grown["redis"] = last.redis_mb - warm.redis_mb
        return grown


def _client_loop(base_url: str, image: bytes, stop: threading.Event, report: SoakReport) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        n = 0
        while not stop.is_set():
            n += 1
            files = {"image": ("sketch.png", image, "image/png")}
            try:
                if n % 4:
                    status = client.post("/v1/translate", files=files).status_code
                else:
                    job = client.post("/v1/translate", params={"async": "true"}, files=files)
                    status = job.status_code
                    if status == 202:
                        status = _await_result(client, job.json()["id"])
                report.record(str(status))
            except httpx.HTTPError as exc:
                report.record(type(exc).__name__)


def _await_result(client: httpx.Client, job_id: str) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        result = client.get(f"/v1/jobs/{job_id}/result")
        if result.status_code != 409:  # 409: not finished yet
            return result.status_code
        time.sleep(0.05)
    return 504


def keys_without_ttl(redis: Redis) -> list[str]:
    found = []
    for key in redis.scan_iter(count=1000):
        name = key.decode(errors="replace")
        if not name.startswith(BROKER_KEYS) and redis.ttl(key) == -1:
            found.append(name)
    return sorted(found)


def soak(
    stack: LocalStack, seconds: float, clients: int, image: bytes, every: float = 2.0
) -> SoakReport:
    """Drive ``stack`` for ``seconds`` with ``clients`` closed-loop clients; sample memory."""
    report = SoakReport(seconds=seconds)
    redis = Redis.from_url(stack.redis_url or "")
    stop = threading.Event()
    threads = [
        threading.Thread(target=_client_loop, args=(stack.base_url, image, stop, report))
        for _ in range(clients)
    ]
    start = time.monotonic()
    for t in threads:
        t.start()
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            used = int(redis.info("memory")["used_memory"])
            rss = {name: memory_mb(stack.procs[name].pid) for name in PROCESSES}
            report.samples.append(Sample(elapsed, rss, used / 2**20, report.requests))
            time.sleep(every)
    finally:
        stop.set()
        for t in threads:
            t.join(90)
    used = int(redis.info("memory")["used_memory"])
    rss = {name: memory_mb(stack.procs[name].pid) for name in PROCESSES}
    report.samples.append(Sample(time.monotonic() - start, rss, used / 2**20, report.requests))
    time.sleep(1)  # let the last jobs end
    report.keys_without_ttl = keys_without_ttl(redis)
    redis.close()
    return report


def print_report(report: SoakReport) -> None:
    first, last = report.samples[0], report.samples[-1]
    rows = [[name, f"{first.rss_mb[name]:.0f}", f"{last.rss_mb[name]:.0f}"] for name in PROCESSES]
    rows.append(["redis used_memory", f"{first.redis_mb:.1f}", f"{last.redis_mb:.1f}"])
    print(markdown_table(["memory (MB)", "start", "end"], rows))
    grown = ", ".join(f"{k} {v:+.1f}" for k, v in report.growth_after_warmup().items())
    print(
        f"\n{report.requests} requests in {report.seconds:.0f} s "
        f"({report.requests / report.seconds:.1f}/s), failures: {dict(report.failures) or 0}, "
        f"keys without a TTL: {report.keys_without_ttl or 'none'}; "
        f"MB grown after the warm-up: {grown}; load average {load_average()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--every", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print_machine(machine_info())
    image = (Path(__file__).parents[1] / "tests/data/fs2k/sketch1-sketch0001.jpg").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(var_dir=Path(tmp), api_port=free_port(), trainer=False)
        try:
            stack.start()
            stack.wait_ready()
            print_report(soak(stack, args.seconds, args.clients, image, args.every))
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

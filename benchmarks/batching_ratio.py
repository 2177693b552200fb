"""Closed-loop clients against one backend, with and without the worker's ``DynamicBatcher``.

``measure_ratio`` alternates off/on ``repeats`` times (so drifting background load hits both
modes); ``RatioResult.ratio`` is the median images/s with batching over without.
``python -m benchmarks.engine`` reports it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from benchmarks.common import median, percentile, ratio, sketch_batch
from services.worker.batcher import BatchStats, DynamicBatcher
from shared.backends import InferenceBackend


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


@dataclass
class LoopResult:
    images_per_s: float
    latencies_ms: list[float]
    batch_sizes: Counter[int] = field(default_factory=Counter)

    @property
    def mean_batch(self) -> float:
        total = sum(self.batch_sizes.values())
        return sum(k * v for k, v in self.batch_sizes.items()) / total if total else 1.0


def closed_loop(infer: Callable[[np.ndarray], object], clients: int, seconds: float) -> LoopResult:
    """``clients`` threads call ``infer(example)`` back to back until ``seconds`` pass."""
    examples = sketch_batch(clients, seed=1)  # (clients, 3, 128, 128): one per client
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start_gate = threading.Barrier(clients + 1)
    deadline = 0.0

    def client(i: int) -> None:
        start_gate.wait()
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            infer(examples[i])
            latencies[i].append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    deadline = start + seconds
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start  # includes the requests in flight at the deadline
    flat = [ms for per_client in latencies for ms in per_client]
    return LoopResult(len(flat) / elapsed, flat)


def batching_off(backend: InferenceBackend, clients: int, seconds: float) -> LoopResult:
    lock = threading.Lock()

    def infer(example: np.ndarray) -> object:
        with lock:  # one forward pass at a time, as a worker without batching
            return backend.run(example[None])  # (1, 3, H, W)

    result = closed_loop(infer, clients, seconds)
    result.batch_sizes[1] = len(result.latencies_ms)
    return result


def batching_on(
    backend: InferenceBackend, clients: int, seconds: float, *, max_batch: int, delay_ms: float
) -> LoopResult:
    sizes: Counter[int] = Counter()

    def on_batch(stats: BatchStats) -> None:
        sizes[stats.size] += 1

    batcher = DynamicBatcher(
        backend,
        max_batch_size=max_batch,
        max_queue_delay_ms=delay_ms,
        batch_sizes=[1, 2, 4, 8, 16, 32],
        on_batch=on_batch,
        name="bench-batcher",
    )
    try:
        result = closed_loop(lambda x: batcher.submit(x).result(), clients, seconds)
    finally:
        batcher.close()
    result.batch_sizes = sizes
    return result


@dataclass
class RatioResult:
    backend: str
    off: list[LoopResult]
    on: list[LoopResult]

    def throughput(self, mode: str) -> float:
        return median([r.images_per_s for r in (self.on if mode == "on" else self.off)])

    @property
    def ratio(self) -> float:
        return ratio(self.throughput("on"), self.throughput("off"))


def measure_ratio(
    backend: InferenceBackend,
    *,
    clients: int,
    seconds: float,
    repeats: int,
    max_batch: int,
    delay_ms: float,
) -> RatioResult:
    with ThreadPoolExecutor(1) as pool:  # warm the largest shape the batcher will use
        pool.submit(backend.run, sketch_batch(max_batch)).result()
    result = RatioResult(backend.name, [], [])
    for _ in range(repeats):  # alternate, so drifting background load hits both modes
        result.off.append(batching_off(backend, clients, seconds))
        result.on.append(
            batching_on(backend, clients, seconds, max_batch=max_batch, delay_ms=delay_ms)
        )
    return result


def ratio_rows(res: RatioResult, clients: int) -> list[list[object]]:
    rows: list[list[object]] = []
    for mode, runs in (("off", res.off), ("on", res.on)):
        lat = [ms for r in runs for ms in r.latencies_ms]
        rows.append([
            res.backend, mode, clients, fmt(res.throughput(mode)),
            " / ".join(fmt(r.images_per_s) for r in runs),
            fmt(percentile(lat, 50)), fmt(percentile(lat, 95)),
            fmt(median([r.mean_batch for r in runs]), 2),
        ])  # fmt: skip
    return rows

"""The in-process dynamic batcher: one per loaded model version.

Task threads ``submit`` one example each and block on a Future. A single batching thread
takes the first waiting example, then keeps gathering until ``max_batch_size`` examples are
in hand or ``max_queue_delay_ms`` has passed since the first arrived. With
``idle_runs_at_once`` (what the worker uses, ``S2I_BATCH_IDLE_RUNS_AT_ONCE``) the delay applies
only to an example that arrived while a batch was running (requests are queueing up): one
that finds the engine idle runs at once with whatever is queued, so a lone request never
waits for company. Either way the thread pads the stack up to
the next of the fixed ``batch_sizes`` (so TensorRT / cuDNN see a few shapes only), runs one
forward pass, and hands each caller its own slice. An example of another shape than the
model's is refused on submit (:class:`ShapeError`), and one that reaches a batch anyway fails
alone: the others of its batch still run.

``instances`` batching threads (Triton's instance count) take from the one queue and run
batches side by side on the same backend: on a CPU, two one-thread executions get more
images/s from two cores than one two-thread execution (``S2I_MODEL_INSTANCES``, and
``benchmarks/RESULTS.md``). The backend must be safe to call from several threads (ONNX
Runtime sessions and TorchScript modules are).
"""

from __future__ import annotations

import bisect
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from shared.backends import InferenceBackend

log = logging.getLogger(__name__)


@dataclass
class BatchStats:
    size: int  # real examples in the batch
    padded_size: int  # after padding to a fixed batch size
    queue_ms: list[float]  # per example: submit -> batch start
    compute_ms: float


@dataclass(frozen=True)
class BatchResult:
    output: np.ndarray  # this example's slice of the batch output
    batch_size: int
    queue_ms: float  # submit -> batch start
    compute_ms: float  # the whole batch's forward pass


@dataclass
class _Pending:
    example: np.ndarray  # (C, H, W) or (Z,)
    future: Future[BatchResult]
    submitted: float = field(default_factory=time.perf_counter)


class BatcherClosed(RuntimeError):
    """Submitted to a batcher that has been closed (a reload swapped it out)."""


class ShapeError(ValueError):
    """An example whose shape is not the one the model takes."""


class DynamicBatcher:
    def __init__(
        self,
        backend: InferenceBackend,
        *,
        max_batch_size: int = 16,
        max_queue_delay_ms: float = 10.0,
        batch_sizes: list[int] | None = None,
        example_shape: tuple[int, ...] | None = None,
        idle_runs_at_once: bool = False,
        on_batch: Callable[[BatchStats], None] | None = None,
        name: str = "batcher",
        instances: int = 1,
    ) -> None:
        if instances < 1:
            raise ValueError(f"instances must be at least 1, not {instances}")
        self.backend = backend
        self.example_shape = example_shape  # one example, no batch axis; None: any one shape
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_ms / 1000
        self.idle_runs_at_once = idle_runs_at_once
        if batch_sizes is None:  # powers of two up to the maximum
            batch_sizes = [2**i for i in range(max_batch_size.bit_length())]
        sizes = sorted({s for s in batch_sizes if s <= max_batch_size} | {max_batch_size})
        self.batch_sizes = sizes
        self.on_batch = on_batch
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()  # orders submit against close
        self._threads = [
            threading.Thread(
                target=self._loop, name=name if instances == 1 else f"{name}-{i}", daemon=True
            )
            for i in range(instances)
        ]
        for thread in self._threads:
            thread.start()

    # --- callers -----------------------------------------------------------------------
    def submit(self, example: np.ndarray) -> Future[BatchResult]:
        if self.example_shape is not None and example.shape != self.example_shape:
            raise ShapeError(
                f"example of shape {example.shape}; {self.backend.name} takes {self.example_shape}"
            )
        future: Future[BatchResult] = Future()
        with self._lock:
            if self._closed.is_set():
                raise BatcherClosed("batcher is closed")
            self._queue.put(_Pending(example, future))
        return future

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop taking work, finish everything already submitted, then stop."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            for _ in self._threads:  # one stop mark per thread; everything before runs
                self._queue.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def padded_size(self, n: int) -> int:
        return self.batch_sizes[bisect.bisect_left(self.batch_sizes, n)]

    # --- the batching thread -----------------------------------------------------------
    def _gather(self, idle_since: float) -> tuple[list[_Pending], bool]:
        """Block for one example, then gather more until full or the delay passes.

        idle_since: when this thread's last batch finished (perf_counter)."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        # arrived while the engine was idle: take what is queued now, wait for nothing more
        waits = not self.idle_runs_at_once or first.submitted < idle_since
        deadline = first.submitted + (self.max_queue_delay_s if waits else 0.0)
        stop = False
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _same_shape(self, live: list[_Pending]) -> list[_Pending]:
        """The examples of the expected (else the most common) shape; fails the others."""
        shapes = Counter(p.example.shape for p in live)
        shape = self.example_shape or shapes.most_common(1)[0][0]
        if shapes[shape] == len(live):
            return live
        for p in live:
            if p.example.shape != shape:
                p.future.set_exception(
                    ShapeError(f"example of shape {p.example.shape} in a batch of {shape}")
                )
        return [p for p in live if p.example.shape == shape]

    def _run(self, batch: list[_Pending]) -> None:
        start = time.perf_counter()
        live = [p for p in batch if p.future.set_running_or_notify_cancel()]
        live = self._same_shape(live) if live else live
        if not live:
            return
        n = len(live)
        padded = self.padded_size(n) if self.backend.pad_batches else n
        try:
            stacked = np.stack([p.example for p in live]).astype(np.float32, copy=False)
            if padded > n:  # repeat the last example; its outputs are dropped
                stacked = np.concatenate([stacked, np.repeat(stacked[-1:], padded - n, axis=0)])
            out = self.backend.run(stacked)  # (padded, ...) -> (padded, ...)
            if out.shape[0] < n:
                raise RuntimeError(f"backend returned {out.shape[0]} rows for {n} examples")
        except Exception as exc:
            log.exception("batch of %d failed on %s", n, self.backend.name)
            for p in live:
                p.future.set_exception(exc)
            return
        compute_ms = (time.perf_counter() - start) * 1000
        queue_ms = [(start - p.submitted) * 1000 for p in live]
        for i, p in enumerate(live):
            p.future.set_result(BatchResult(out[i], n, queue_ms[i], compute_ms))
        if self.on_batch is not None:
            stats = BatchStats(size=n, padded_size=padded, queue_ms=queue_ms, compute_ms=compute_ms)
            try:
                self.on_batch(stats)
            except Exception:
                log.exception("on_batch callback failed")

    def _loop(self) -> None:
        idle_since = 0.0
        while True:
            batch, stop = self._gather(idle_since)
            if batch:
                self._run(batch)
                idle_since = time.perf_counter()
            if stop:  # this thread's stop mark
                break
        # Nothing is left for this thread: submit and close() are ordered by the lock, so every
        # example sits before the stop marks in the FIFO queue and was taken before this
        # thread's mark; the marks still queued belong to the other threads.

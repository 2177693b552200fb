"""The dynamic batcher: gathers concurrent requests, pads, splits, survives failures, drains."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future

import numpy as np
import pytest

from services.worker.batcher import (
    BatcherClosed,
    BatchResult,
    BatchStats,
    DynamicBatcher,
    ShapeError,
)
from shared.backends.fake import FakeBackend

SHAPE = (3, 4, 4)


def _example(value: float) -> np.ndarray:
    return np.full(SHAPE, value, np.float32)  # (3, 4, 4)


@pytest.fixture
def batchers() -> Iterator[list[DynamicBatcher]]:
    """Batchers made in a test; closed afterwards so no batching thread outlives it."""
    made: list[DynamicBatcher] = []
    yield made
    for b in made:
        b.close(timeout=5)


def _make(made: list[DynamicBatcher], backend: FakeBackend, **kwargs: object) -> DynamicBatcher:
    batcher = DynamicBatcher(backend, **kwargs)  # type: ignore[arg-type]
    made.append(batcher)
    return batcher


def _submit_from_threads(batcher: DynamicBatcher, n: int) -> dict[int, BatchResult]:
    """n threads submit example i (filled with i) at the same moment; returns i -> result."""
    barrier = threading.Barrier(n)
    results: dict[int, BatchResult] = {}
    errors: list[BaseException] = []

    def caller(i: int) -> None:
        try:
            barrier.wait()
            results[i] = batcher.submit(_example(i)).result(timeout=10)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert errors == []
    return results


def test_concurrent_submits_are_batched_and_each_caller_gets_its_row(
    batchers: list[DynamicBatcher],
) -> None:
    stats: list[BatchStats] = []
    backend = FakeBackend(latency_s=0.01)  # invert
    batcher = _make(
        batchers,
        backend,
        max_batch_size=16,
        max_queue_delay_ms=50,
        batch_sizes=[1, 2, 4, 8, 16],
        on_batch=stats.append,
    )

    results = _submit_from_threads(batcher, 16)

    assert sorted(results) == list(range(16))
    for i, result in results.items():
        np.testing.assert_array_equal(result.output, _example(-i))
    assert max(s.size for s in stats) > 1  # real examples per forward pass
    assert len(backend.calls) < 16
    assert sum(s.size for s in stats) == 16
    assert set(backend.calls) <= {1, 2, 4, 8, 16}


def test_max_batch_size_is_respected(batchers: list[DynamicBatcher]) -> None:
    stats: list[BatchStats] = []
    backend = FakeBackend(latency_s=0.005)
    batcher = _make(
        batchers, backend, max_batch_size=4, max_queue_delay_ms=100, on_batch=stats.append
    )

    futures = [batcher.submit(_example(i)) for i in range(20)]
    outputs = [f.result(timeout=10).output for f in futures]

    for i, out in enumerate(outputs):
        np.testing.assert_array_equal(out, _example(-i))
    assert all(c <= 4 for c in backend.calls)
    assert sum(s.size for s in stats) == 20
    assert max(s.size for s in stats) == 4  # all queued at once: full batches


def test_batches_are_padded_to_the_fixed_sizes(batchers: list[DynamicBatcher]) -> None:
    stats: list[BatchStats] = []
    backend = FakeBackend()
    batcher = _make(
        batchers,
        backend,
        max_batch_size=8,
        max_queue_delay_ms=200,
        batch_sizes=[1, 2, 4, 8],
        on_batch=stats.append,
    )

    futures = [batcher.submit(_example(i)) for i in range(3)]
    results = [f.result(timeout=5) for f in futures]

    assert backend.calls == [4]  # 3 real examples, padded to 4
    assert [s.size for s in stats] == [3]
    assert [s.padded_size for s in stats] == [4]
    assert [r.batch_size for r in results] == [3, 3, 3]
    for i, r in enumerate(results):
        np.testing.assert_array_equal(r.output, _example(-i))

    more = [batcher.submit(_example(i)) for i in range(5)]
    [f.result(timeout=5) for f in more]
    assert backend.calls == [4, 8]
    assert set(backend.calls) <= {1, 2, 4, 8}


def test_backends_that_gain_nothing_from_fixed_shapes_are_not_padded(
    batchers: list[DynamicBatcher],
) -> None:
    backend = FakeBackend(pad_batches=False)  # e.g. ONNX Runtime on CPU
    batcher = _make(
        batchers, backend, max_batch_size=8, max_queue_delay_ms=200, batch_sizes=[1, 2, 4, 8]
    )
    futures = [batcher.submit(_example(i)) for i in range(3)]
    assert [f.result(timeout=5).batch_size for f in futures] == [3, 3, 3]
    assert backend.calls == [3]


def test_batch_sizes_above_the_maximum_are_ignored(batchers: list[DynamicBatcher]) -> None:
    backend = FakeBackend()
    batcher = _make(batchers, backend, max_batch_size=6, batch_sizes=[1, 4, 32])
    assert batcher.batch_sizes == [1, 4, 6]
    assert [batcher.padded_size(n) for n in (1, 2, 4, 5, 6)] == [1, 4, 4, 6, 6]


def test_a_lone_request_returns_after_about_the_queue_delay(
    batchers: list[DynamicBatcher],
) -> None:
    backend = FakeBackend()
    batcher = _make(
        batchers, backend, max_batch_size=16, max_queue_delay_ms=100, batch_sizes=[1, 16]
    )

    start = time.perf_counter()
    result = batcher.submit(_example(2)).result(timeout=5)
    elapsed = time.perf_counter() - start

    np.testing.assert_array_equal(result.output, _example(-2))
    assert elapsed < 0.1 + 0.5  # the delay plus a generous margin for a busy machine
    assert backend.calls == [1]
    assert result.queue_ms < 100 + 500


def test_backend_exception_reaches_every_caller_and_the_batcher_goes_on(
    batchers: list[DynamicBatcher],
) -> None:
    def fn(batch: np.ndarray) -> np.ndarray:
        if (batch == 13).any():
            raise ValueError("poisoned batch")
        return -batch

    backend = FakeBackend(fn)
    batcher = _make(
        batchers, backend, max_batch_size=8, max_queue_delay_ms=200, batch_sizes=[1, 2, 4, 8]
    )

    futures = [batcher.submit(_example(v)) for v in (1, 13, 2)]
    for f in futures:
        with pytest.raises(ValueError, match="poisoned batch"):
            f.result(timeout=5)
    assert backend.calls == [4]  # one batch (3 padded to 4), all three failed with it

    np.testing.assert_array_equal(
        batcher.submit(_example(5)).result(timeout=5).output, _example(-5)
    )


def test_a_mis_shaped_example_fails_alone_not_its_batch(batchers: list[DynamicBatcher]) -> None:
    backend = FakeBackend()
    batcher = _make(batchers, backend, max_batch_size=8, max_queue_delay_ms=100)

    good = [batcher.submit(_example(i)) for i in (1, 2)]
    bad = batcher.submit(np.zeros((3, 5, 5), np.float32))
    more = batcher.submit(_example(3))

    with pytest.raises(ShapeError):
        bad.result(timeout=2)
    for value, future in zip((1, 2, 3), [*good, more], strict=True):
        np.testing.assert_array_equal(future.result(timeout=2).output, _example(-value))
    assert backend.calls == [4]  # the three of one shape, padded to 4, in one batch


def test_a_batcher_that_knows_the_shape_refuses_another_on_submit(
    batchers: list[DynamicBatcher],
) -> None:
    batcher = _make(batchers, FakeBackend(), example_shape=SHAPE, max_queue_delay_ms=1)
    with pytest.raises(ShapeError, match=r"\(3, 5, 5\).*\(3, 4, 4\)"):
        batcher.submit(np.zeros((3, 5, 5), np.float32))
    np.testing.assert_array_equal(
        batcher.submit(_example(5)).result(timeout=2).output, _example(-5)
    )


def test_close_finishes_everything_submitted_then_refuses(batchers: list[DynamicBatcher]) -> None:
    backend = FakeBackend(latency_s=0.005)
    batcher = _make(batchers, backend, max_batch_size=4, max_queue_delay_ms=20)

    futures = [batcher.submit(_example(i)) for i in range(50)]
    batcher.close()

    assert batcher.closed
    assert all(f.done() for f in futures)  # close() returns after the drain
    for i, f in enumerate(futures):
        np.testing.assert_array_equal(f.result(timeout=0).output, _example(-i))
    assert sum(min(c, 4) for c in backend.calls) >= 50
    with pytest.raises(BatcherClosed):
        batcher.submit(_example(0))
    batcher.close()  # closing twice is harmless


def test_close_while_submitters_race_loses_nothing(batchers: list[DynamicBatcher]) -> None:
    batcher = _make(batchers, FakeBackend(latency_s=0.002), max_batch_size=8, max_queue_delay_ms=5)
    accepted: list[tuple[int, Future[BatchResult]]] = []
    refused = threading.Event()
    stop = threading.Event()

    def submitter(offset: int) -> None:
        i = offset
        while not stop.is_set():
            try:
                accepted.append((i, batcher.submit(_example(i))))
            except BatcherClosed:
                refused.set()
                return
            i += 4
            time.sleep(0.001)

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    batcher.close()
    stop.set()
    for t in threads:
        t.join(5)

    assert refused.is_set()
    assert len(accepted) > 10
    for i, f in accepted:
        np.testing.assert_array_equal(f.result(timeout=5).output, _example(-i))


def test_on_batch_gets_stats_for_every_batch(batchers: list[DynamicBatcher]) -> None:
    stats: list[BatchStats] = []
    backend = FakeBackend(latency_s=0.02)
    batcher = _make(
        batchers,
        backend,
        max_batch_size=4,
        max_queue_delay_ms=50,
        batch_sizes=[1, 2, 4],
        on_batch=stats.append,
    )

    futures = [batcher.submit(_example(i)) for i in range(6)]
    results = [f.result(timeout=5) for f in futures]

    assert [(s.size, s.padded_size) for s in stats] == [(4, 4), (2, 2)]
    assert [len(s.queue_ms) for s in stats] == [4, 2]
    assert all(s.compute_ms >= 20 * 0.9 for s in stats)  # includes the backend's 20 ms
    assert all(q >= 0 for s in stats for q in s.queue_ms)
    # the second batch waited for the first one's forward pass
    assert min(stats[1].queue_ms) >= 20 * 0.9
    assert [r.compute_ms for r in results[:4]] == [stats[0].compute_ms] * 4


def test_a_failing_on_batch_callback_does_not_break_results(
    batchers: list[DynamicBatcher],
) -> None:
    def broken(stats: BatchStats) -> None:
        raise RuntimeError("metrics down")

    batcher = _make(batchers, FakeBackend(), max_queue_delay_ms=1, on_batch=broken)
    for i in range(3):
        np.testing.assert_array_equal(
            batcher.submit(_example(i)).result(timeout=5).output, _example(-i)
        )


def test_a_cancelled_request_is_skipped(batchers: list[DynamicBatcher]) -> None:
    backend = FakeBackend()
    batcher = _make(
        batchers, backend, max_batch_size=8, max_queue_delay_ms=200, batch_sizes=[1, 2, 4, 8]
    )

    keep = batcher.submit(_example(1))
    dropped = batcher.submit(_example(2))
    assert dropped.cancel()

    np.testing.assert_array_equal(keep.result(timeout=5).output, _example(-1))
    assert keep.result().batch_size == 1
    assert backend.calls == [1]


def test_a_lone_example_on_an_idle_engine_runs_at_once(batchers: list[DynamicBatcher]) -> None:
    backend = FakeBackend()
    waiting = _make(batchers, backend, max_queue_delay_ms=400)
    at_once = _make(batchers, FakeBackend(), max_queue_delay_ms=400, idle_runs_at_once=True)
    for batcher, least_s, most_s in ((waiting, 0.35, 5.0), (at_once, 0.0, 0.2)):
        start = time.perf_counter()
        batcher.submit(_example(1)).result(timeout=5)
        assert least_s <= time.perf_counter() - start < most_s


def test_examples_queued_behind_a_running_batch_are_gathered(
    batchers: list[DynamicBatcher],
) -> None:
    stats: list[BatchStats] = []
    backend = FakeBackend(latency_s=0.3)  # the engine stays busy with the first example
    batcher = _make(batchers, backend, max_queue_delay_ms=100, idle_runs_at_once=True,
                    on_batch=stats.append)  # fmt: skip
    first = batcher.submit(_example(0))
    time.sleep(0.05)  # the first is running now
    queued = [batcher.submit(_example(i)) for i in range(1, 6)]
    first.result(timeout=5)
    for f in queued:
        f.result(timeout=5)
    assert [s.size for s in stats] == [1, 5]  # alone at once, then the queue as one batch


class _Rendezvous(FakeBackend):
    """A backend whose every call waits until ``parties`` calls are inside it at once."""

    def __init__(self, parties: int, timeout_s: float) -> None:
        super().__init__(pad_batches=False)
        self._barrier = threading.Barrier(parties, timeout=timeout_s)

    def run(self, batch: np.ndarray) -> np.ndarray:
        self._barrier.wait()  # BrokenBarrierError when the calls do not overlap
        return super().run(batch)


def test_instances_run_batches_side_by_side(batchers: list[DynamicBatcher]) -> None:
    side_by_side = _make(batchers, _Rendezvous(2, timeout_s=5), max_batch_size=1, instances=2)
    one_at_a_time = _make(batchers, _Rendezvous(2, timeout_s=0.3), max_batch_size=1)

    futures = [side_by_side.submit(_example(i)) for i in range(6)]
    for i, f in enumerate(futures):
        np.testing.assert_array_equal(f.result(timeout=10).output, _example(-i))

    first = one_at_a_time.submit(_example(1))  # no second thread to meet it: the call times out
    with pytest.raises(threading.BrokenBarrierError):
        first.result(timeout=10)


def test_close_with_several_instances_finishes_everything_and_stops_each_thread(
    batchers: list[DynamicBatcher],
) -> None:
    backend = FakeBackend(latency_s=0.002)
    batcher = _make(batchers, backend, max_batch_size=4, max_queue_delay_ms=5, instances=3,
                    name="closing")  # fmt: skip
    assert len([t for t in threading.enumerate() if t.name.startswith("closing-")]) == 3

    futures = [batcher.submit(_example(i)) for i in range(60)]
    batcher.close(timeout=10)

    for i, f in enumerate(futures):
        np.testing.assert_array_equal(f.result(timeout=0).output, _example(-i))
    assert sum(backend.calls) >= 60
    assert not [t for t in threading.enumerate() if t.name.startswith("closing-")]
    with pytest.raises(BatcherClosed):
        batcher.submit(_example(0))


def test_instances_must_be_positive() -> None:
    with pytest.raises(ValueError, match="instances"):
        DynamicBatcher(FakeBackend(), instances=0)

"""The model pool: serves CURRENT, hot-reloads checked versions, never drops a request."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch

from services.worker.batcher import BatcherClosed, BatchResult, BatchStats
from services.worker.model_pool import ModelPool, ReloadEvent, intra_op_threads
from shared.backends import InferenceBackend
from shared.backends.fake import FakeBackend
from shared.manifest import INT8_ONNX_FILE, ONNX_FILE, Manifest, Quantized
from shared.registry import Registry, RegistryError
from shared.settings import Settings
from tests.helpers import TinyConv, make_manifest, publish_tiny, wait_until, write_files

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py

NAME = "edges"
Fn = Callable[[np.ndarray], np.ndarray]


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        model_root=tmp_path / "models",
        backend="auto",
        device="cpu",
        intra_op_threads=1,
        max_batch_size=4,
        max_queue_delay_ms=2,
        batch_sizes=[1, 2, 4],
        reload_interval_s=3600,  # the tests poll by hand
    )


class Recorder:
    """A backend factory giving FakeBackend(fns[version]); remembers what it opened."""

    def __init__(self, fns: dict[int, Fn], latency_s: float = 0.0) -> None:
        self.fns = fns
        self.latency_s = latency_s
        self.opened: list[tuple[int, FakeBackend]] = []

    def __call__(self, version_dir: Path, manifest: Manifest) -> InferenceBackend:
        backend = FakeBackend(self.fns[manifest.version], latency_s=self.latency_s)
        self.opened.append((manifest.version, backend))
        return backend

    def versions_opened(self) -> list[int]:
        return [v for v, _ in self.opened]


@pytest.fixture
def make_pool(registry: Registry, settings: Settings) -> Iterator[Callable[..., ModelPool]]:
    pools: list[ModelPool] = []

    def make(recorder: Recorder | None = None, **kwargs: object) -> ModelPool:
        pool = ModelPool(registry, settings, backend_factory=recorder, **kwargs)  # type: ignore[arg-type]
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


def _publish_fake(
    registry: Registry, tmp_path: Path, tag: str, *, make_current: bool = True
) -> Manifest:
    files = write_files(tmp_path / f"src-{tag}", {"model.bin": f"weights {tag}".encode()})
    return registry.publish(make_manifest(NAME), files, make_current=make_current)


def _x(value: float = 0.5) -> np.ndarray:
    return np.full((3, 8, 8), value, np.float32)  # (3, 8, 8)


def _run(pool: ModelPool, x: np.ndarray, version: int | None = None) -> BatchResult:
    return pool.get(NAME, version).batcher.submit(x).result(timeout=10)


def _eager(net: TinyConv, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(x[None]))[0].numpy()


def _rand_x() -> np.ndarray:
    return np.random.default_rng(1).uniform(-1, 1, (3, 8, 8)).astype(np.float32)


# --- real exports (ONNX Runtime through load_backend) -------------------------------------------


def test_start_serves_current_not_the_newest(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool]
) -> None:
    _, net1 = publish_tiny(registry, NAME, tmp_path, seed=1)
    publish_tiny(registry, NAME, tmp_path, seed=2, make_current=False)
    events: list[ReloadEvent] = []
    pool = make_pool(on_reload=events.append)

    pool.start()

    assert pool.get(NAME).manifest.version == 1
    x = _rand_x()
    np.testing.assert_allclose(_run(pool, x).output, _eager(net1, x), atol=1e-5)
    assert [(e.version, e.result) for e in events] == [(1, "loaded")]
    assert events[0].detail.startswith("onnx:")
    served = pool.served_models()[NAME]
    assert served.version == 1
    assert served.available_versions == [1, 2]
    assert str(served.backend).startswith("onnx:")
    assert pool.refusals() == {}


def test_poll_swaps_to_a_new_version_and_retires_the_old(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool]
) -> None:
    publish_tiny(registry, NAME, tmp_path, seed=1)
    pool = make_pool()
    pool.start()
    old = pool.get(NAME)

    _, net2 = publish_tiny(registry, NAME, tmp_path, seed=2)
    pool.poll_once()

    new = pool.get(NAME)
    assert new.manifest.version == 2
    x = _rand_x()
    np.testing.assert_allclose(_run(pool, x).output, _eager(net2, x), atol=1e-5)
    assert wait_until(lambda: old.batcher.closed)
    with pytest.raises(BatcherClosed):
        old.batcher.submit(x)


@pytest.mark.parametrize("damage", ["tamper", "delete"])
def test_a_version_with_a_bad_file_is_never_served(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool], damage: str
) -> None:
    _, net1 = publish_tiny(registry, NAME, tmp_path, seed=1)
    events: list[ReloadEvent] = []
    pool = make_pool(on_reload=events.append)
    pool.start()

    publish_tiny(registry, NAME, tmp_path, seed=2)
    onnx_file = registry.version_dir(NAME, 2) / "model.onnx"
    if damage == "tamper":
        onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    else:
        onnx_file.unlink()
    pool.poll_once()
    pool.poll_once()  # not retried

    assert pool.get(NAME).manifest.version == 1
    x = _rand_x()
    np.testing.assert_allclose(_run(pool, x).output, _eager(net1, x), atol=1e-5)
    assert pool.failed[(NAME, 2)].startswith("integrity")
    assert [(e.version, e.result) for e in events] == [(1, "loaded"), (2, "integrity")]
    assert f"{NAME}:2" in pool.refusals()
    with pytest.raises(RegistryError, match="failed its checks"):
        pool.get(NAME, version=2)


# --- fake backends (canary and swap behaviour) -------------------------------------------------


def test_rollback_serves_the_old_version_again(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool]
) -> None:
    recorder = Recorder({1: lambda b: b + 1, 2: lambda b: b + 2})
    _publish_fake(registry, tmp_path, "v1")
    pool = make_pool(recorder)
    pool.start()
    _publish_fake(registry, tmp_path, "v2")
    pool.poll_once()
    assert _run(pool, _x(0)).output[0, 0, 0] == 2

    registry.set_current(NAME, 1)
    pool.poll_once()

    assert pool.get(NAME).manifest.version == 1
    assert _run(pool, _x(0)).output[0, 0, 0] == 1


def test_the_old_batcher_finishes_its_requests_before_it_closes(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool]
) -> None:
    recorder = Recorder({1: lambda b: b + 1, 2: lambda b: b + 2}, latency_s=0.03)
    _publish_fake(registry, tmp_path, "v1")
    pool = make_pool(recorder)
    pool.start()
    old = pool.get(NAME)
    pending = [old.batcher.submit(_x(i)) for i in range(10)]  # 3 batches of up to 4

    _publish_fake(registry, tmp_path, "v2")
    pool.poll_once()

    for i, f in enumerate(pending):
        np.testing.assert_array_equal(f.result(timeout=10).output, _x(i + 1))
    assert wait_until(lambda: old.batcher.closed)
    (_, v1_backend) = recorder.opened[0]
    assert wait_until(lambda: v1_backend.closed)
    assert _run(pool, _x(0)).output[0, 0, 0] == 2


CANARY_FAILURES: dict[str, Fn] = {
    "nan": lambda b: b * np.nan,
    "constant": lambda b: np.zeros_like(b),
    "wrong-shape": lambda b: b[:, :1],
}


@pytest.mark.parametrize("kind", sorted(CANARY_FAILURES))
def test_canary_rejects_bad_output_and_never_retries(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool], kind: str
) -> None:
    recorder = Recorder({1: lambda b: -b, 2: CANARY_FAILURES[kind]})
    _publish_fake(registry, tmp_path, "v1")
    events: list[ReloadEvent] = []
    pool = make_pool(recorder, on_reload=events.append)
    pool.start()

    _publish_fake(registry, tmp_path, "v2")
    pool.poll_once()
    pool.poll_once()
    pool.poll_once()

    assert pool.get(NAME).manifest.version == 1
    np.testing.assert_array_equal(_run(pool, _x(0.5)).output, _x(-0.5))
    assert recorder.versions_opened() == [1, 2]  # v2 opened once, not on every poll
    assert recorder.opened[1][1].closed  # the rejected backend was released
    assert pool.failed[(NAME, 2)].startswith("canary")
    assert [(e.version, e.result) for e in events] == [(1, "loaded"), (2, "canary")]


def test_a_pinned_older_version_is_loaded_on_demand(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool]
) -> None:
    recorder = Recorder({1: lambda b: b + 1, 2: lambda b: b + 2})
    _publish_fake(registry, tmp_path, "v1")
    _publish_fake(registry, tmp_path, "v2")
    pool = make_pool(recorder)
    pool.start()
    assert recorder.versions_opened() == [2]

    pinned = pool.get(NAME, version=1)

    assert pinned.manifest.version == 1
    assert _run(pool, _x(0), version=1).output[0, 0, 0] == 1
    assert _run(pool, _x(0)).output[0, 0, 0] == 2
    assert pool.get(NAME, version=1) is pinned  # kept loaded
    assert pool.get(NAME, version=2) is pool.get(NAME)
    assert recorder.versions_opened() == [2, 1]


def test_unknown_model_raises_registry_error(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool]
) -> None:
    recorder = Recorder({1: lambda b: -b})
    _publish_fake(registry, tmp_path, "v1")
    pool = make_pool(recorder)
    pool.start()
    with pytest.raises(RegistryError, match="not served"):
        pool.get("nothing")
    with pytest.raises(RegistryError):
        pool.get("nothing", version=1)
    with pytest.raises(RegistryError):
        pool.get(NAME, version=9)


def test_a_worker_given_a_model_list_loads_only_those(
    registry: Registry, tmp_path: Path, settings: Settings
) -> None:
    files = write_files(tmp_path / "src", {"model.bin": b"weights"})
    for name in (NAME, "other", "third"):
        registry.publish(make_manifest(name), files)
    recorder = Recorder({1: lambda b: b})
    pool = ModelPool(
        registry, settings.model_copy(update={"models": [NAME, "third"]}), backend_factory=recorder
    )
    try:
        pool.start()

        assert sorted(pool.served_models()) == [NAME, "third"]
        assert len(recorder.opened) == 2  # "other" never loaded
        with pytest.raises(RegistryError, match="S2I_MODELS"):
            pool.get("other")
        with pytest.raises(RegistryError, match="S2I_MODELS"):
            pool.get("other", version=1)  # not loaded on demand either
    finally:
        pool.close()


def test_asking_for_a_version_before_it_exists_does_not_block_it_later(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool]
) -> None:
    recorder = Recorder({1: lambda b: b + 1, 2: lambda b: b + 2})
    _publish_fake(registry, tmp_path, "v1")
    pool = make_pool(recorder)
    pool.start()
    with pytest.raises(RegistryError):
        pool.get(NAME, version=2)

    _publish_fake(registry, tmp_path, "v2")
    pool.poll_once()

    assert pool.get(NAME).manifest.version == 2


def test_a_version_with_a_corrupt_manifest_is_recorded_as_failed(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool]
) -> None:
    recorder = Recorder({1: lambda b: b + 1, 2: lambda b: b + 2})
    _publish_fake(registry, tmp_path, "v1")
    events: list[ReloadEvent] = []
    pool = make_pool(recorder, on_reload=events.append)
    pool.start()
    _publish_fake(registry, tmp_path, "v2")
    (registry.version_dir(NAME, 2) / "manifest.json").write_text('{"name": "edges", "vers')

    pool.poll_once()

    assert pool.get(NAME).manifest.version == 1  # this part holds
    assert (NAME, 2) in pool.failed
    assert [(e.version, e.result) for e in events] == [(1, "loaded"), (2, "integrity")]


def test_on_batch_reports_model_and_version(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool]
) -> None:
    seen: list[tuple[str, int, BatchStats]] = []
    recorder = Recorder({1: lambda b: -b})
    _publish_fake(registry, tmp_path, "v1")
    pool = make_pool(recorder, on_batch=lambda n, v, s: seen.append((n, v, s)))
    pool.start()
    _run(pool, _x())
    assert wait_until(lambda: len(seen) == 1)
    name, version, stats = seen[0]
    assert (name, version, stats.size) == (NAME, 1, 1)


def test_requests_in_flight_during_a_swap_all_succeed(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool]
) -> None:
    recorder = Recorder({1: lambda b: b + 1, 2: lambda b: b + 2}, latency_s=0.003)
    _publish_fake(registry, tmp_path, "v1")
    pool = make_pool(recorder)
    pool.start()
    stop = threading.Event()
    errors: list[BaseException] = []
    outputs: dict[int, list[float]] = {k: [] for k in range(6)}

    def submit(x: np.ndarray) -> Future[BatchResult]:
        # as services/worker/jobs.py _submit: a swap between get and submit retries
        for _ in range(3):
            try:
                return pool.get(NAME).batcher.submit(x)
            except BatcherClosed:
                continue
        raise RuntimeError("model was reloaded repeatedly while submitting")

    def client(k: int) -> None:
        while not stop.is_set():
            try:
                out = submit(_x(0)).result(timeout=10).output
                outputs[k].append(float(out[0, 0, 0]))
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=client, args=(k,)) for k in outputs]
    for t in threads:
        t.start()
    assert wait_until(lambda: all(len(o) >= 3 for o in outputs.values()))
    _publish_fake(registry, tmp_path, "v2")
    pool.poll_once()
    served_at = {k: len(o) for k, o in outputs.items()}
    assert wait_until(lambda: all(len(o) >= served_at[k] + 3 for k, o in outputs.items()))
    stop.set()
    for t in threads:
        t.join(10)

    assert errors == []
    for seq in outputs.values():
        assert set(seq) <= {1.0, 2.0}
        assert seq[0] == 1.0
        assert seq[-1] == 2.0
        switch = seq.index(2.0)
        assert all(v == 2.0 for v in seq[switch:])  # never back to v1 once v2 answered


@pytest.mark.parametrize("written", ["99", "garbage"])
def test_a_current_naming_no_version_is_reported_once_and_the_old_one_stays(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool], written: str
) -> None:
    recorder = Recorder({1: lambda b: -b})
    _publish_fake(registry, tmp_path, "v1")
    events: list[ReloadEvent] = []
    pool = make_pool(recorder, on_reload=events.append)
    pool.start()
    (registry.root / NAME / "CURRENT").write_text(written)
    for _ in range(3):
        pool.poll_once()
    assert pool.get(NAME).manifest.version == 1  # still served
    named = int(written) if written.isdigit() else 0
    assert [(e.version, e.result) for e in events] == [(1, "loaded"), (named, "bad-current")]
    assert written in events[-1].detail


def test_refused_versions_are_listed_apart_from_the_available_ones(
    registry: Registry, tmp_path: Path, make_pool: Callable[..., ModelPool]
) -> None:
    recorder = Recorder({1: lambda b: -b, 2: CANARY_FAILURES["nan"]})
    _publish_fake(registry, tmp_path, "v1")
    pool = make_pool(recorder)
    pool.start()
    _publish_fake(registry, tmp_path, "v2")
    pool.poll_once()
    info = pool.served_models()[NAME]
    assert info.available_versions == [1]
    assert list(info.refused_versions) == ["2"]
    assert info.refused_versions["2"].startswith("canary")


@pytest.mark.parametrize(("precision", "suffix"), [("auto", ":int8"), ("fp32", "")])
def test_the_pool_serves_the_graph_its_precision_setting_picks(
    registry: Registry, settings: Settings, tmp_path: Path, precision: str, suffix: str
) -> None:
    from services.trainer.publishing.quantize import quantize_onnx

    manifest, net = publish_tiny(registry, NAME, tmp_path, seed=1)
    folder = registry.version_dir(NAME, manifest.version)
    calibration = [np.stack([_rand_x(), _x(0.2)])]
    quantize_onnx(folder / ONNX_FILE, tmp_path / INT8_ONNX_FILE, calibration)
    quantized = Quantized(method="test", calibration="test", accepted=True)
    files = {ONNX_FILE: folder / ONNX_FILE, INT8_ONNX_FILE: tmp_path / INT8_ONNX_FILE}
    registry.publish(manifest.model_copy(update={"quantized": quantized}), files)
    pool = ModelPool(registry, settings.model_copy(update={"precision": precision}))
    try:
        pool.start()
        assert pool.served_models()[NAME].backend == f"onnx:CPUExecutionProvider{suffix}"
        x = _rand_x()
        np.testing.assert_allclose(_run(pool, x).output, _eager(net, x), atol=0.05)
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("instances", "threads", "expected"),
    [(1, 0, 0), (1, 3, 3), (2, 5, 5), (2, 0, None)],
)
def test_intra_op_threads_are_shared_among_instances_unless_set(
    settings: Settings, instances: int, threads: int, expected: int | None
) -> None:
    chosen = intra_op_threads(
        settings.model_copy(update={"model_instances": instances, "intra_op_threads": threads})
    )
    cores = len(os.sched_getaffinity(0))
    assert chosen == (max(1, cores // 2) if expected is None else expected)


def test_two_instances_serve_one_onnx_session_from_two_threads(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    _, net = publish_tiny(registry, NAME, tmp_path, seed=1)
    pool = ModelPool(registry, settings.model_copy(update={"model_instances": 2}))
    try:
        pool.start()
        names = [t.name for t in threading.enumerate() if t.name.startswith(f"batcher-{NAME}-v1")]
        assert sorted(names) == [f"batcher-{NAME}-v1-0", f"batcher-{NAME}-v1-1"]
        xs = [np.random.default_rng(i).uniform(-1, 1, (3, 8, 8)).astype(np.float32)
              for i in range(16)]  # fmt: skip
        futures = [pool.get(NAME).batcher.submit(x) for x in xs]
        for x, f in zip(xs, futures, strict=True):
            np.testing.assert_allclose(f.result(timeout=10).output, _eager(net, x), atol=1e-5)
    finally:
        pool.close()

"""Inference backends: choosing the export, ONNX Runtime providers, numbers equal to eager."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from services.trainer.publishing.export import ONNX_FILE, TORCHSCRIPT_FILE
from shared.backends import InferenceBackend, load_backend
from shared.backends.fake import FakeBackend
from shared.backends.onnx import GPU_PROVIDERS, OnnxBackend, choose_providers, provider_specs
from shared.backends.torchscript import TorchScriptBackend
from shared.manifest import Manifest
from shared.registry import Registry
from tests.helpers import TinyConv, publish_tiny


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, Manifest, TinyConv]]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("backends")
    registry = Registry(root / "models")
    manifest, net = publish_tiny(registry, "tiny", root / "work", seed=3)
    yield registry.version_dir("tiny", manifest.version), manifest, net
    torch.set_num_threads(previous)


def _batch(n: int) -> np.ndarray:
    return np.random.default_rng(n).uniform(-1, 1, (n, 3, 8, 8)).astype(np.float32)


def _eager(net: TinyConv, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def test_auto_prefers_onnx(published: tuple[Path, Manifest, TinyConv]) -> None:
    vdir, manifest, _ = published
    backend = load_backend(vdir, manifest, device="cpu", intra_op_threads=1)
    try:
        assert isinstance(backend, OnnxBackend)
        assert isinstance(backend, InferenceBackend)
        assert backend.name == "onnx:CPUExecutionProvider"
    finally:
        backend.close()


def test_torchscript_when_asked(published: tuple[Path, Manifest, TinyConv]) -> None:
    vdir, manifest, _ = published
    backend = load_backend(vdir, manifest, prefer="torchscript", device="cpu")
    try:
        assert isinstance(backend, TorchScriptBackend)
        assert backend.name == "torchscript:cpu"
    finally:
        backend.close()


def test_auto_falls_back_to_torchscript_without_onnx(
    published: tuple[Path, Manifest, TinyConv], tmp_path: Path
) -> None:
    vdir, manifest, _ = published
    shutil.copy(vdir / TORCHSCRIPT_FILE, tmp_path / TORCHSCRIPT_FILE)
    backend = load_backend(tmp_path, manifest, device="cpu")
    assert isinstance(backend, TorchScriptBackend)
    backend.close()


@pytest.mark.parametrize(
    ("present", "prefer"),
    [((), "auto"), ((TORCHSCRIPT_FILE,), "onnx"), ((ONNX_FILE,), "torchscript")],
)
def test_missing_export_raises_file_not_found(
    published: tuple[Path, Manifest, TinyConv],
    tmp_path: Path,
    present: tuple[str, ...],
    prefer: str,
) -> None:
    vdir, manifest, _ = published
    for filename in present:
        shutil.copy(vdir / filename, tmp_path / filename)
    with pytest.raises(FileNotFoundError, match=r"tiny v1: no "):
        load_backend(tmp_path, manifest, prefer=prefer)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefer", ["onnx", "torchscript"])
def test_backends_match_eager(published: tuple[Path, Manifest, TinyConv], prefer: str) -> None:
    vdir, manifest, net = published
    backend = load_backend(vdir, manifest, prefer=prefer, device="cpu", intra_op_threads=1)  # type: ignore[arg-type]
    try:
        for n in (1, 3, 8):
            x = _batch(n)
            out = backend.run(x)
            assert out.dtype == np.float32
            assert out.shape == (n, 3, 8, 8)
            np.testing.assert_allclose(out, _eager(net, x), atol=1e-5)
    finally:
        backend.close()


def test_onnx_backend_takes_non_contiguous_batches(
    published: tuple[Path, Manifest, TinyConv],
) -> None:
    vdir, manifest, net = published
    backend = load_backend(vdir, manifest, device="cpu", intra_op_threads=1)
    x = _batch(4)[::2]  # a strided view
    assert not x.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(backend.run(x), _eager(net, np.ascontiguousarray(x)), atol=1e-5)
    backend.close()


# these build sessions for GPU providers this ONNX Runtime must lack
CPU_ONLY_BUILD = pytest.mark.skipif(
    bool(set(ort.get_available_providers()) & set(GPU_PROVIDERS)),
    reason="this ONNX Runtime has GPU providers",
)


@CPU_ONLY_BUILD
def test_onnx_backend_refuses_cuda_without_gpu_providers(
    published: tuple[Path, Manifest, TinyConv],
) -> None:
    vdir, _, _ = published
    with pytest.raises(RuntimeError, match="device=cuda"):
        OnnxBackend(vdir / ONNX_FILE, device="cuda")


ALL = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]


@pytest.mark.parametrize(
    ("available", "device", "expected"),
    [
        (
            ALL,
            "auto",
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (
            ALL,
            "cuda",
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (ALL, "cpu", ["CPUExecutionProvider"]),
        (
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            "auto",
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (["CPUExecutionProvider"], "auto", ["CPUExecutionProvider"]),
        (["CPUExecutionProvider", "AzureExecutionProvider"], "auto", ["CPUExecutionProvider"]),
    ],
)
def test_choose_providers_orders_tensorrt_cuda_cpu(
    available: list[str], device: str, expected: list[str]
) -> None:
    assert choose_providers(available, device) == expected


def test_choose_providers_raises_for_cuda_without_gpu() -> None:
    with pytest.raises(RuntimeError, match="device=cuda"):
        choose_providers(["CPUExecutionProvider", "AzureExecutionProvider"], "cuda")


def test_gpu_providers_get_fp16_the_engine_cache_and_a_bounded_arena(tmp_path: Path) -> None:
    specs = provider_specs(choose_providers(ALL, "auto"), fp16=True, trt_cache=tmp_path)
    assert specs == [
        (
            "TensorrtExecutionProvider",
            {
                "trt_fp16_enable": "True",
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": str(tmp_path),
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": str(tmp_path),
            },
        ),
        ("CUDAExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"}),
        ("CPUExecutionProvider", {}),
    ]
    assert provider_specs(["TensorrtExecutionProvider"], fp16=False, trt_cache=None) == [
        ("TensorrtExecutionProvider", {"trt_fp16_enable": "False"})
    ]


# ONNX Runtime warns about each provider this CPU build lacks, then runs on the CPU
GPU_ON_CPU = pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")


@CPU_ONLY_BUILD
@GPU_ON_CPU
def test_a_session_for_tensorrt_is_built_and_runs_where_only_the_cpu_is(
    published: tuple[Path, Manifest, TinyConv], tmp_path: Path
) -> None:
    vdir, _, net = published
    cache = tmp_path / "trt"
    backend = OnnxBackend(vdir / ONNX_FILE, available=ALL, gpu_fp16=True, trt_cache=cache)
    assert cache.is_dir()  # made for TensorRT's engines
    assert backend.name == "onnx:CPUExecutionProvider"
    x = _batch(3)
    np.testing.assert_allclose(backend.run(x), _eager(net, x), atol=1e-5)
    backend.close()


@CPU_ONLY_BUILD
@GPU_ON_CPU
def test_cuda_runs_an_fp16_copy_of_the_graph_with_float32_in_and_out(
    published: tuple[Path, Manifest, TinyConv],
) -> None:
    vdir, _, net = published
    cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    half = OnnxBackend(vdir / ONNX_FILE, available=cuda, gpu_fp16=True)
    full = OnnxBackend(vdir / ONNX_FILE, available=cuda, gpu_fp16=False)
    assert half.name == "onnx:CPUExecutionProvider:fp16"
    assert full.name == "onnx:CPUExecutionProvider"
    x = _batch(4)
    out = half.run(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _eager(net, x), atol=1e-2)  # half precision
    assert not np.array_equal(out, full.run(x))  # it did run in half precision
    np.testing.assert_allclose(full.run(x), _eager(net, x), atol=1e-5)
    half.close()
    full.close()


def test_fake_backend_records_call_sizes_and_applies_its_function() -> None:
    backend = FakeBackend(lambda b: b * 3)
    assert isinstance(backend, InferenceBackend)
    out = backend.run(np.ones((2, 4), np.float64))
    backend.run(np.ones((5, 4), np.float32))
    assert backend.calls == [2, 5]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.full((2, 4), 3.0))
    assert not backend.closed
    backend.close()
    assert backend.closed


def test_fake_backend_default_inverts_and_sleeps() -> None:
    backend = FakeBackend(latency_s=0.02, per_item_s=0.01)
    start = time.perf_counter()
    out = backend.run(np.arange(6, dtype=np.float32).reshape(3, 2))
    assert time.perf_counter() - start >= 0.05 * 0.9
    np.testing.assert_array_equal(out, -np.arange(6, dtype=np.float32).reshape(3, 2))

"""Inference backends: one small protocol, several implementations (like httpx transports).

A backend runs a whole batch: ``run(batch)`` takes a float32 array shaped as the manifest's
input spec with the batch axis first, and returns the output batch. Implementations:

- :class:`~shared.backends.onnx.OnnxBackend` — ONNX Runtime, TensorRT / CUDA / CPU providers
- :class:`~shared.backends.torchscript.TorchScriptBackend` — ``torch.jit`` on CUDA or CPU
- :class:`~shared.backends.fake.FakeBackend` — a numpy function, for tests and benchmarks

The worker never imports training code: it only needs a version folder and its manifest.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from shared.manifest import INT8_ONNX_FILE, ONNX_FILE, TORCHSCRIPT_FILE, Manifest, Precision

log = logging.getLogger(__name__)

BackendName = Literal["auto", "onnx", "torchscript"]
DeviceName = Literal["auto", "cpu", "cuda"]
__all__ = ["BackendName", "DeviceName", "InferenceBackend", "Precision", "load_backend"]


@runtime_checkable
class InferenceBackend(Protocol):
    name: str  # e.g. "onnx:CPUExecutionProvider", "torchscript:cuda"
    # pad batches to a few fixed sizes: pays off where kernels/engines are built per shape
    # (TensorRT, cuDNN autotuning); on CPU it only adds work
    pad_batches: bool

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, ...) float32 in -> (N, ...) float32 out."""
        ...

    def close(self) -> None: ...


def load_backend(
    version_dir: Path,
    manifest: Manifest,
    *,
    prefer: BackendName = "auto",
    device: DeviceName = "auto",
    intra_op_threads: int = 0,
    precision: Precision = "auto",
    spinning: bool = True,
    gpu_fp16: bool = False,
    trt_cache: Path | None = None,
) -> InferenceBackend:
    """Open the export in ``version_dir`` that ``prefer`` asks for (auto: ONNX first).

    precision: which ONNX file runs on CPU (``Settings.precision``): "fp32" model.onnx,
    "int8" the version's int8 copy wherever it has one, "auto" that copy only where
    ``manifest.quantized.accepted``; model.onnx otherwise (with a warning where int8 was
    wanted). A GPU provider always runs model.onnx.
    spinning: ONNX Runtime's intra-op threads busy-wait between ops (``OnnxBackend``).
    gpu_fp16, trt_cache: half precision and TensorRT's engine cache on a GPU provider
    (``shared/backends/onnx.py``).
    """
    order = ["onnx", "torchscript"] if prefer == "auto" else [prefer]
    errors: list[str] = []
    for kind in order:
        if kind == "onnx" and (version_dir / ONNX_FILE).is_file():
            from shared.backends.onnx import OnnxBackend, runs_on_gpu

            path = version_dir / ONNX_FILE
            if precision != "fp32" and not runs_on_gpu(device):
                path = int8_file(version_dir, manifest, precision) or path
            return OnnxBackend(
                path,
                device=device,
                threads=intra_op_threads,
                spinning=spinning,
                gpu_fp16=gpu_fp16,
                trt_cache=trt_cache,
            )
        if kind == "torchscript" and (version_dir / TORCHSCRIPT_FILE).is_file():
            from shared.backends.torchscript import TorchScriptBackend

            return TorchScriptBackend(
                version_dir / TORCHSCRIPT_FILE, device=device, threads=intra_op_threads
            )
        errors.append(f"no {kind} export")
    raise FileNotFoundError(f"{manifest.name} v{manifest.version}: {'; '.join(errors)}")


def int8_file(version_dir: Path, manifest: Manifest, precision: Precision) -> Path | None:
    """The version's int8 graph if ``precision`` wants it and it is there, else None."""
    quantized = manifest.quantized
    if quantized is None or (precision == "auto" and not quantized.accepted):
        if precision == "int8":
            log.warning("%s v%d has no int8 graph; running model.onnx", manifest.name,
                        manifest.version)  # fmt: skip
        return None
    path = version_dir / INT8_ONNX_FILE
    # a registry version lists (and has verified) every file it holds
    if not path.is_file() or (manifest.files and INT8_ONNX_FILE not in manifest.files):
        log.warning("%s v%d: its manifest names an int8 graph that is not there; running "
                    "model.onnx", manifest.name, manifest.version)  # fmt: skip
        return None
    return path

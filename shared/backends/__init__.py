"""Inference backends: one small protocol, several implementations (like httpx transports).

A backend runs a whole batch: ``run(batch)`` takes a float32 array shaped as the manifest's
input spec with the batch axis first, and returns the output batch. Implementations:

- :class:`~shared.backends.onnx.OnnxBackend` — ONNX Runtime, TensorRT / CUDA / CPU providers
- :class:`~shared.backends.torchscript.TorchScriptBackend` — ``torch.jit`` on CUDA or CPU
- :class:`~shared.backends.fake.FakeBackend` — a numpy function, for tests and benchmarks

The worker never imports training code: it only needs a version folder and its manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from shared.manifest import ONNX_FILE, TORCHSCRIPT_FILE, Manifest

BackendName = Literal["auto", "onnx", "torchscript"]
DeviceName = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "int8"]


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
) -> InferenceBackend:
    """Open the export in ``version_dir`` that ``prefer`` asks for (auto: ONNX first).

    precision: which ONNX file runs on CPU (``Settings.precision``): "fp32" model.onnx,
    "int8" the manifest's quantized copy (FileNotFoundError when there is none), "auto" that
    copy where ``manifest.quantized.accepted``. A GPU provider always runs model.onnx.
    spinning: ONNX Runtime's intra-op threads busy-wait between ops (``OnnxBackend``).
    """
    order = ["onnx", "torchscript"] if prefer == "auto" else [prefer]
    errors: list[str] = []
    for kind in order:
        if kind == "onnx" and (version_dir / ONNX_FILE).is_file():
            from shared.backends.onnx import OnnxBackend, runs_on_gpu

            path = version_dir / ONNX_FILE
            int8 = _int8_file(version_dir, manifest, precision)
            if int8 is not None and not runs_on_gpu(device):
                path = int8
            return OnnxBackend(path, device=device, threads=intra_op_threads, spinning=spinning)
        if kind == "torchscript" and (version_dir / TORCHSCRIPT_FILE).is_file():
            from shared.backends.torchscript import TorchScriptBackend

            return TorchScriptBackend(
                version_dir / TORCHSCRIPT_FILE, device=device, threads=intra_op_threads
            )
        errors.append(f"no {kind} export")
    raise FileNotFoundError(f"{manifest.name} v{manifest.version}: {'; '.join(errors)}")


def _int8_file(version_dir: Path, manifest: Manifest, precision: Precision) -> Path | None:
    """The int8 graph ``precision`` asks for, or None for model.onnx."""
    quantized = manifest.quantized
    if precision == "fp32" or (precision == "auto" and not (quantized and quantized.accepted)):
        return None
    path = version_dir / quantized.file if quantized is not None else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"{manifest.name} v{manifest.version}: no int8 graph")
    return path

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
) -> InferenceBackend:
    """Open the export in ``version_dir`` that ``prefer`` asks for (auto: ONNX first)."""
    order = ["onnx", "torchscript"] if prefer == "auto" else [prefer]
    errors: list[str] = []
    for kind in order:
        if kind == "onnx" and (version_dir / ONNX_FILE).is_file():
            from shared.backends.onnx import OnnxBackend

            return OnnxBackend(version_dir / ONNX_FILE, device=device, threads=intra_op_threads)
        if kind == "torchscript" and (version_dir / TORCHSCRIPT_FILE).is_file():
            from shared.backends.torchscript import TorchScriptBackend

            return TorchScriptBackend(
                version_dir / TORCHSCRIPT_FILE, device=device, threads=intra_op_threads
            )
        errors.append(f"no {kind} export")
    raise FileNotFoundError(f"{manifest.name} v{manifest.version}: {'; '.join(errors)}")

"""ONNX Runtime backend: TensorRT, then CUDA, then CPU, whichever this build has."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from shared.manifest import INPUT_NAME, INT8_ONNX_FILE, OUTPUT_NAME

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def choose_providers(available: list[str], device: str) -> list[str]:
    """Providers in priority order for ``device`` ("auto", "cpu", "cuda")."""
    chosen = [] if device == "cpu" else [p for p in GPU_PROVIDERS if p in available]
    if device == "cuda" and not chosen:
        raise RuntimeError(f"device=cuda but ONNX Runtime has only {available}")
    return [*chosen, "CPUExecutionProvider"]


def runs_on_gpu(device: str) -> bool:
    """Whether ``device`` would put a session on a GPU provider of this ONNX Runtime build."""
    import onnxruntime as ort

    return choose_providers(ort.get_available_providers(), device)[0] in GPU_PROVIDERS


class OnnxBackend:
    def __init__(
        self, path: Path, *, device: str = "auto", threads: int = 0, spinning: bool = True
    ) -> None:
        """threads: intra-op threads (0: one per core); spinning: idle intra-op threads
        busy-wait for the next op (ONNX Runtime's default: fastest on an idle machine, CPU
        taken from the API and Redis on a small shared one)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        if not spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = choose_providers(ort.get_available_providers(), device)
        self._session = ort.InferenceSession(str(path), opts, providers=providers)
        int8 = path.name == INT8_ONNX_FILE
        self.name = f"onnx:{self._session.get_providers()[0]}" + (":int8" if int8 else "")
        self.pad_batches = self._session.get_providers()[0] in GPU_PROVIDERS
        log.info("loaded %s with %s", path, self._session.get_providers())

    def run(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch)})
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        del self._session

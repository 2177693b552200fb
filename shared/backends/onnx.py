"""ONNX Runtime backend: TensorRT, then CUDA, then CPU, whichever this build has.

On a GPU provider (measured only where a GPU is available; on CPU the same code paths build
their provider lists and sessions, and the tests run them on the CPU provider):

- TensorRT builds fp16 engines (``gpu_fp16``) and keeps them, and its timing cache, under
  ``trt_cache`` so that a restart or a hot reload of the same graph does not build them again
  (minutes per shape on a large model);
- CUDA alone runs an fp16 copy of the graph made at load (inputs and outputs stay float32;
  it needs the ``onnx`` package, else the fp32 graph runs), and grows its memory arena by what
  is asked, not by powers of two;
- a batch goes in and out through IO binding: the output is allocated where the provider
  runs and copied to the host once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from shared.manifest import INPUT_NAME, INT8_ONNX_FILE, OUTPUT_NAME

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
ProviderSpec = tuple[str, dict[str, str]]


def choose_providers(available: list[str], device: str) -> list[str]:
    """Providers in priority order for ``device`` ("auto", "cpu", "cuda")."""
    chosen = [] if device == "cpu" else [p for p in GPU_PROVIDERS if p in available]
    if device == "cuda" and not chosen:
        raise RuntimeError(f"device=cuda but ONNX Runtime has only {available}")
    return [*chosen, "CPUExecutionProvider"]


def provider_specs(
    providers: list[str], *, fp16: bool, trt_cache: Path | None
) -> list[ProviderSpec]:
    """Each provider with the options it runs with (see the module's docstring)."""
    specs: list[ProviderSpec] = []
    for name in providers:
        options: dict[str, str] = {}
        if name == "TensorrtExecutionProvider":
            options["trt_fp16_enable"] = str(fp16)
            if trt_cache is not None:
                cache = str(trt_cache)
                options |= {
                    "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": cache,
                    "trt_timing_cache_enable": "True",
                    "trt_timing_cache_path": cache,
                }
        elif name == "CUDAExecutionProvider":
            options["arena_extend_strategy"] = "kSameAsRequested"
        specs.append((name, options))
    return specs


def half_precision_graph(path: Path) -> bytes | None:
    """``path``'s graph with float16 weights and activations, float32 inputs and outputs;
    None where the ``onnx`` package is not installed."""
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:
        log.warning("onnx is not installed: %s runs in fp32 on the GPU", path)
        return None
    model = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    return bytes(model.SerializeToString())


def runs_on_gpu(device: str) -> bool:
    """Whether ``device`` would put a session on a GPU provider of this ONNX Runtime build."""
    import onnxruntime as ort

    return choose_providers(ort.get_available_providers(), device)[0] in GPU_PROVIDERS


class OnnxBackend:
    def __init__(
        self,
        path: Path,
        *,
        device: str = "auto",
        threads: int = 0,
        spinning: bool = True,
        gpu_fp16: bool = False,
        trt_cache: Path | None = None,
        available: list[str] | None = None,
    ) -> None:
        """threads: intra-op threads (0: one per core); spinning: idle intra-op threads
        busy-wait for the next op (ONNX Runtime's default: fastest on an idle machine, CPU
        taken from the API and Redis on a small shared one); gpu_fp16, trt_cache: the module's
        docstring; available: the providers to choose from (default: this build's)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        if not spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = choose_providers(available or ort.get_available_providers(), device)
        graph: str | bytes = str(path)
        if gpu_fp16 and providers[0] == "CUDAExecutionProvider":
            graph = half_precision_graph(path) or graph
        if trt_cache is not None and providers[0] == "TensorrtExecutionProvider":
            trt_cache.mkdir(parents=True, exist_ok=True)
        specs: list[Any] = provider_specs(providers, fp16=gpu_fp16, trt_cache=trt_cache)
        self._session = ort.InferenceSession(graph, opts, providers=specs)
        first = self._session.get_providers()[0]
        int8 = path.name == INT8_ONNX_FILE
        fp16 = isinstance(graph, bytes) or (gpu_fp16 and first == "TensorrtExecutionProvider")
        self.name = f"onnx:{first}" + (":int8" if int8 else "") + (":fp16" if fp16 else "")
        self.pad_batches = first in GPU_PROVIDERS
        # where outputs are allocated: the provider's own memory on a GPU
        self._output_device = "cuda" if first in GPU_PROVIDERS else "cpu"
        log.info("loaded %s with %s", path, self._session.get_providers())

    def run(self, batch: np.ndarray) -> np.ndarray:
        binding = self._session.io_binding()  # one per call: instances run side by side
        binding.bind_cpu_input(INPUT_NAME, np.ascontiguousarray(batch, dtype=np.float32))
        binding.bind_output(OUTPUT_NAME, self._output_device)
        self._session.run_with_iobinding(binding)
        (out,) = binding.copy_outputs_to_cpu()
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        del self._session

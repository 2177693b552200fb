"""``python -m benchmarks.engine``: inference throughput of the backends, and what batching buys.

1. For each backend (ONNX Runtime, TorchScript) and batch size: images/s of ``backend.run``
   on the bootstrap UNet (128x128), the median of ``--repeats`` timed repeats of
   ``--seconds`` each, after a warm-up.
2. In the same run, the batching on/off ratio: ``--clients`` threads each send single
   images in a closed loop (send, wait, send again) for ``--seconds``,
   - on: through a :class:`DynamicBatcher` (max_batch_size 16, max_queue_delay_ms 5),
   - off: straight to ``backend.run`` with a batch of one, serialized by a lock (a worker
     without batching),
   alternating off/on ``--repeats`` times (``benchmarks.batching_ratio``); prints
   ``batching_on/off = X.XX`` (medians).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import numpy as np

from benchmarks.batching_ratio import RatioResult, fmt, measure_ratio, ratio_rows
from benchmarks.common import (
    load_average,
    machine_info,
    markdown_table,
    median,
    parse_int_list,
    print_machine,
    publish_untrained,
    sketch_batch,
)
from shared.backends import BackendName, InferenceBackend, load_backend
from shared.manifest import Manifest
from shared.registry import Registry

log = logging.getLogger(__name__)

BACKENDS = ("onnx", "torchscript")
MODEL = "sketch2photo"
DEFAULT_TORCH_THREADS = os.cpu_count() or 1  # torch's own default: one per core


def prepare_model(root: Path) -> tuple[Path, Manifest]:
    """The served version of the benchmark model under ``root``, published if missing."""
    registry = Registry(root)
    if registry.current(MODEL) is None:
        publish_untrained(root, names=(MODEL,))
    version = registry.current(MODEL)
    assert version is not None
    return registry.version_dir(MODEL, version), registry.manifest(MODEL, version)


def open_backend(
    version_dir: Path, manifest: Manifest, name: str, threads: int
) -> InferenceBackend:
    """Load ``name`` with ``threads`` intra-op threads (0: the runtime's default)."""
    import torch

    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    torch.set_num_threads(threads or DEFAULT_TORCH_THREADS)  # process-wide: reset each time
    prefer = cast(BackendName, name)
    return load_backend(version_dir, manifest, prefer=prefer, intra_op_threads=threads)


# --- 1. backend.run throughput ---------------------------------------------------------------
def time_run(
    backend: InferenceBackend,
    batch: int,
    *,
    seconds: float,
    repeats: int,
    warmup: int = 3,
    x: np.ndarray | None = None,
) -> list[float]:
    """images/s of ``backend.run`` at ``batch`` (on ``x``, default: benchmark sketches), one
    value per timed repeat.

    Runs in a thread of its own, as the worker's batcher thread does: on this machine
    TorchScript called from Python's main thread was up to 15x slower than from any other
    (OpenMP), which would measure something no worker does.
    """
    x = sketch_batch(batch) if x is None else x  # (batch, 3, 128, 128)
    rates: list[float] = []

    def measure() -> None:
        for _ in range(warmup):  # TorchScript's profiling executor optimizes after a few calls
            backend.run(x)
        for _ in range(repeats):
            n, start = 0, time.perf_counter()
            while True:
                backend.run(x)
                n += 1
                elapsed = time.perf_counter() - start
                if elapsed >= seconds:
                    break
            rates.append(n * batch / elapsed)

    with ThreadPoolExecutor(1, thread_name_prefix="bench-run") as pool:
        pool.submit(measure).result()
    return rates


# --- report ----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.engine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny run (smoke test)")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16")
    parser.add_argument("--seconds", type=float, default=2.0, help="per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--clients", type=int, default=16, help="threads for the on/off ratio")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-queue-delay-ms", type=float, default=5.0)
    parser.add_argument(
        "--threads",
        default="0",
        help="intra-op thread counts to try, e.g. 0,1 (0: the runtime's default)",
    )
    parser.add_argument(
        "--model-root",
        type=Path,
        default=None,
        help="model volume to use (the model is published there if missing)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.seconds, args.repeats, args.clients = "1,4", 0.3, 1, 4
    return args


RUN_HEADER = ["backend", "batch", "images/s", "ms/batch", "min–max images/s"]
RATIO_HEADER = ["backend", "batching", "clients", "images/s (median)", "each repeat",
                "p50 ms", "p95 ms", "mean batch"]  # fmt: skip


def bench_backend(
    backend: InferenceBackend, label: str, batch_sizes: list[int], args: argparse.Namespace
) -> tuple[list[list[object]], RatioResult]:
    """The throughput rows for each batch size, then the on/off ratio, of one backend."""
    rows: list[list[object]] = []
    for batch in batch_sizes:
        rates = time_run(backend, batch, seconds=args.seconds, repeats=args.repeats)
        med = median(rates)
        rows.append([label, batch, fmt(med), fmt(1000 * batch / med, 2),
                     f"{fmt(min(rates))}–{fmt(max(rates))}"])  # fmt: skip
        print(f"  {label} batch {batch}: {med:.1f} images/s", flush=True)
    res = measure_ratio(backend, clients=args.clients, seconds=args.seconds,
                        repeats=args.repeats, max_batch=args.max_batch_size,
                        delay_ms=args.max_queue_delay_ms)  # fmt: skip
    res.backend = label
    return rows, res


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation notes
    args = parse_args(argv)
    batch_sizes = parse_int_list(args.batch_sizes)
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    configs = [(b, t) for b in args.backends.split(",") if b for t in thread_counts]
    for module in ("torch", "onnxruntime"):  # imported now so machine_info can ask them
        importlib.import_module(module)
    run_rows: list[list[object]] = []
    ratios: list[RatioResult] = []
    with tempfile.TemporaryDirectory(prefix="s2i-bench-") as tmp:
        version_dir, manifest = prepare_model(args.model_root or Path(tmp))
        print("# benchmarks.engine\n")
        print_machine(machine_info())
        print(
            f"model: {manifest.name} v{manifest.version} ({manifest.architecture}, "
            f"{manifest.input.height}x{manifest.input.width}, untrained weights)\n"
        )
        for name, threads in configs:
            backend = open_backend(version_dir, manifest, name, threads)
            try:
                label = f"{backend.name} threads={threads or 'default'}"
                rows, res = bench_backend(backend, label, batch_sizes, args)
            finally:
                backend.close()
            run_rows += rows
            ratios.append(res)
    print(f"\n## backend.run throughput (median of {args.repeats} x {args.seconds:g} s)\n")
    print(markdown_table(RUN_HEADER, run_rows))
    print(
        f"\n## Batching on/off: {args.clients} client threads, single images, max_batch_size "
        f"{args.max_batch_size}, max_queue_delay_ms {args.max_queue_delay_ms:g}\n"
    )
    print(
        markdown_table(RATIO_HEADER, [r for res in ratios for r in ratio_rows(res, args.clients)])
    )
    print()
    for res in ratios:
        print(f"batching_on/off = {res.ratio:.2f} ({res.backend}, {args.clients} clients)")
    print(f"\nload average after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

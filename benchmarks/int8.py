"""``python -m benchmarks.int8``: ms per image of each bundled model's fp32 and int8 graphs.

For every bundled model that ships an int8 copy (``Manifest.quantized``, made by
``python -m services.trainer quantize``), both graphs run in ONNX Runtime on the CPU, on the
same inputs shaped by the manifest, at each ``--batch-sizes`` and ``--threads`` (0: the
runtime's default, what the worker uses), alternating fp32 / int8 over ``--repeats`` timed
repeats of ``--seconds`` each (so both see the same machine load); prints the median ms per
image, the speed-up, and the quality both graphs had on the held-out pairs (from the manifest:
``quantize`` measured them) with the bound and whether int8 is served (``accepted``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from benchmarks.common import (
    load_average,
    machine_info,
    markdown_table,
    median,
    parse_int_list,
    print_machine,
)
from benchmarks.engine import time_run
from shared.backends import InferenceBackend, Precision, load_backend
from shared.bundled import BUNDLED_ROOT, MANIFEST_FILE, bundled_names
from shared.manifest import Manifest

log = logging.getLogger(__name__)

PRECISIONS: tuple[Precision, Precision] = ("fp32", "int8")


def quantized_models(root: Path = BUNDLED_ROOT) -> list[tuple[str, Manifest]]:
    manifests = [
        (name, Manifest.model_validate_json((root / name / MANIFEST_FILE).read_text()))
        for name in bundled_names(root)
    ]
    return [(name, m) for name, m in manifests if m.quantized is not None]


def ms_per_image(
    folder: Path, manifest: Manifest, batch: int, threads: int, seconds: float, repeats: int
) -> dict[str, float]:
    """{precision: median ms per image}, the two graphs alternating repeat by repeat."""
    x = np.random.default_rng(0).uniform(-1, 1, manifest.input.shape(batch)).astype(np.float32)
    backends: dict[str, InferenceBackend] = {
        p: load_backend(
            folder, manifest, prefer="onnx", device="cpu", intra_op_threads=threads, precision=p
        )
        for p in PRECISIONS
    }
    rates: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    try:
        for _ in range(repeats):
            for p, backend in backends.items():
                rates[p] += time_run(backend, batch, seconds=seconds, repeats=1, x=x)
    finally:
        for backend in backends.values():
            backend.close()
    return {p: 1000 / median(r) for p, r in rates.items()}


def quality_rows(models: list[tuple[str, Manifest]]) -> list[list[object]]:
    rows: list[list[object]] = []
    for name, m in models:
        q = m.quantized
        assert q is not None
        for key in ("fid", "ssim", "psnr", "fsim"):
            if key in q.fp32_metrics and key in q.metrics:
                a, b = q.fp32_metrics[key], q.metrics[key]
                rows.append([name, key, f"{a:.4g}", f"{b:.4g}", f"{b - a:+.3g}"])
        rows.append([name, "accepted", q.bound, "", "yes" if q.accepted else "no"])
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.int8",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--threads", default="1,0", help="intra-op threads (0: default)")
    parser.add_argument("--seconds", type=float, default=1.5, help="per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one short repeat (smoke test)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    if args.quick:
        args.seconds, args.repeats, args.batch_sizes, args.threads = 0.2, 1, "1", "1"
    print_machine(machine_info())
    models = quantized_models()
    if not models:
        print("no bundled model ships an int8 graph")
        return 1
    rows: list[list[object]] = []
    for name, manifest in models:
        for threads in [int(t) for t in args.threads.split(",")]:
            for batch in parse_int_list(args.batch_sizes):
                ms = ms_per_image(BUNDLED_ROOT / name, manifest, batch, threads,
                                  args.seconds, args.repeats)  # fmt: skip
                rows.append([name, threads or "default", batch, f"{ms['fp32']:.2f}",
                             f"{ms['int8']:.2f}", f"{ms['fp32'] / ms['int8']:.2f}"])  # fmt: skip
    header = ["model", "threads", "batch", "fp32 ms/img", "int8 ms/img", "int8 speed-up"]
    print(markdown_table(header, rows))
    print(f"\nload average after: {load_average()}\n")
    print(markdown_table(["model", "metric", "fp32", "int8", "change"], quality_rows(models)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

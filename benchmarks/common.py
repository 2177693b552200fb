"""What both benchmarks need: the benchmark model, machine info, statistics, a test sketch.

The benchmark model is the bootstrap UNet (128x128, ``ARCH_KWARGS`` of
``services/trainer/bootstrap.py``) with untrained weights: throughput does not depend on
the weights, and building it takes seconds instead of a training budget. It is exported and
published through the same code path as a real model (``publish_generator``), so the
benchmarks run exactly the files a worker would serve.
"""

from __future__ import annotations

import io
import logging
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from shared.manifest import Manifest
from shared.registry import Registry

log = logging.getLogger(__name__)

IMAGE_SIZE = 128
BENCH_MODELS = ("sketch2photo", "photo2sketch")


def publish_untrained(root: Path, names: Sequence[str] = BENCH_MODELS) -> list[Manifest]:
    """Publish the bootstrap UNet with fresh (untrained) weights under ``root``."""
    import torch

    from services.trainer.nets import UNetGenerator, init_weights
    from services.trainer.publishing.bootstrap import (
        ARCH_KWARGS,
        MODELS,
        manifest_for,
        publish_generator,
    )

    registry = Registry(root)
    published = []
    for spec in MODELS:  # published under its task's name (sketch2photo, photo2sketch)
        if spec.task not in names:
            continue
        torch.manual_seed(0)
        netG = UNetGenerator(**ARCH_KWARGS)  # type: ignore[arg-type]
        init_weights(netG)
        netG.eval()
        manifest = manifest_for(spec, {"val_l1": float("nan"), "steps": 0}).model_copy(
            update={
                "name": spec.task,
                "metrics": {},
                "description": "untrained bootstrap UNet (benchmarks)",
            }
        )
        published.append(publish_generator(registry, netG, manifest))
    return published


# --- machine -------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def gpu_name() -> str:
    """The first CUDA device, asked only of an already imported torch (imports cost seconds)."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except Exception:
        pass
    return "none" if torch is not None else "not checked (torch not imported)"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    info = {
        "cpu": cpu_model(),
        "cores (os.cpu_count)": str(os.cpu_count()),
        "usable cores (sched_getaffinity)": str(len(os.sched_getaffinity(0))),
        "gpu": gpu_name(),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "onnxruntime": package_version("onnxruntime"),
        "load average (1, 5, 15 min)": load_average(),
        "git": git_revision(),
    }
    if "torch" in sys.modules:  # its __version__ names the build, e.g. +cu130
        torch = sys.modules["torch"]
        info["torch"] = f"{torch.__version__} (intra-op threads {torch.get_num_threads()})"
    if "onnxruntime" in sys.modules:
        providers = sys.modules["onnxruntime"].get_available_providers()
        info["onnxruntime"] += f" ({', '.join(providers)})"
    return info


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``; NaN elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of process ``pid`` in MB from ``/proc/<pid>/status``: ``VmRSS`` (resident
    now) or ``VmHWM`` (its peak so far); NaN where there is no such figure."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def print_machine(info: dict[str, str]) -> None:
    print("## Machine\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print()


# --- statistics and tables -----------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def ratio(on: float, off: float) -> float:
    return on / off if off > 0 else float("nan")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def parse_int_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"expected positive integers separated by commas, got {text!r}")
    return values


# --- inputs --------------------------------------------------------------------------------
def sketch_batch(n: int, size: int = IMAGE_SIZE, seed: int = 0) -> np.ndarray:
    """(n, 3, size, size) float32 in [-1, 1]: white paper with dark strokes."""
    rng = np.random.default_rng(seed)
    x = np.ones((n, 3, size, size), dtype=np.float32)
    for i in range(n):
        for _ in range(6):
            r0, c0 = rng.integers(0, size - 8, 2)
            x[i, :, r0 : r0 + 2, c0 : c0 + int(rng.integers(8, size - c0))] = -1.0
            x[i, :, r0 : r0 + int(rng.integers(8, size - r0)), c0 : c0 + 2] = -1.0
    return x


def sketch_png(size: int = IMAGE_SIZE, seed: int = 0) -> bytes:
    """A ``size`` x ``size`` RGB PNG drawing (black strokes on white)."""
    from PIL import Image

    chw = sketch_batch(1, size, seed)[0]  # (3, H, W) in [-1, 1]
    hwc = ((chw.transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(hwc, "RGB").save(buf, format="PNG")
    return buf.getvalue()

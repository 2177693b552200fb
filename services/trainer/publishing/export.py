"""Export a serving net (one tensor in, one out) to TorchScript and ONNX, parity-checked.

The ONNX graph has a dynamic batch axis (``input``/``output``, axis 0 named ``batch``), so the
worker's batcher can run any batch size. Parity: eager PyTorch and each export must agree to
``atol`` (max abs diff, fp32) at every batch size in ``check_batches``; otherwise ExportError.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shared.manifest import INPUT_NAME, ONNX_FILE, OUTPUT_NAME, TORCHSCRIPT_FILE

__all__ = ["INPUT_NAME", "ONNX_FILE", "OUTPUT_NAME", "TORCHSCRIPT_FILE", "export_model"]

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")


class ExportError(Exception):
    """An export that failed or does not match eager PyTorch."""


@dataclass
class ExportResult:
    files: dict[str, Path]  # file name in a version folder -> path written
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # "onnx@8" -> diff


def _example(shape: tuple[int, ...], batch: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    # uniform in [-1, 1]: the range of images and a fair sample of noise inputs
    return torch.rand((batch, *shape[1:]), generator=gen) * 2 - 1


@contextmanager
def quiet_exporters() -> Iterator[None]:
    """Silence the exporters' known, harmless warnings: torch.jit's deprecation notices (it
    is what TorchScript export is), tracer notes about Python-bool shape checks, and
    "instance_norm is set to train=True" (per-example statistics are what we serve)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", r".*torch\.jit.*is deprecated", FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", r"ONNX export mode is set to TrainingMode\.EVAL")
        warnings.filterwarnings("ignore", r"Constant folding - Only steps=1")
        yield


def export_torchscript(net: nn.Module, example: torch.Tensor, path: Path) -> Path:
    with quiet_exporters(), torch.no_grad():
        traced = torch.jit.trace(net, (example,), check_trace=False)
        traced = torch.jit.freeze(traced)
        traced.save(str(path))
    return path


def export_onnx(
    net: nn.Module, example: torch.Tensor, path: Path, *, opset: int = 17, dynamo: bool = False
) -> Path:
    # The TorchScript-based exporter is ~40x faster than dynamo=True for these convnets and
    # gives the same graph; dynamo stays available for nets it cannot trace.
    with quiet_exporters(), torch.no_grad():
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=1024)
            torch.onnx.export(
                net,
                (example,),
                str(path),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                external_data=False,
            )
        else:
            torch.onnx.export(
                net,
                (example,),
                str(path),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
            )
    return path


def check_parity(
    net: nn.Module,
    files: dict[str, Path],
    input_shape: tuple[int, ...],
    *,
    check_batches: tuple[int, ...] = (1, 8),
    atol: float = 1e-4,
) -> dict[str, float]:
    """Run eager, TorchScript and ONNX Runtime (CPU) on the same inputs; return max diffs."""
    import onnxruntime as ort  # heavy import, only where an export is checked

    diffs: dict[str, float] = {}
    with quiet_exporters():
        ts = torch.jit.load(str(files[TORCHSCRIPT_FILE])) if TORCHSCRIPT_FILE in files else None
    session = None
    if ONNX_FILE in files:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        session = ort.InferenceSession(
            str(files[ONNX_FILE]), opts, providers=["CPUExecutionProvider"]
        )

    def diff(name: str, got: np.ndarray, expected: np.ndarray) -> float:
        if got.shape != expected.shape:  # numpy would broadcast and hide a wrong batch axis
            raise ExportError(f"{name} gives shape {got.shape}, eager PyTorch {expected.shape}")
        return float(np.abs(got - expected).max())

    for batch in check_batches:
        x = _example(input_shape, batch, seed=batch)
        with torch.no_grad():
            expected = net(x).numpy()
        try:
            if ts is not None:
                with torch.no_grad():
                    diffs[f"torchscript@{batch}"] = diff("torchscript", ts(x).numpy(), expected)
            if session is not None:
                (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
                diffs[f"onnx@{batch}"] = diff("onnx", np.asarray(got), expected)
        except ExportError:
            raise
        except Exception as exc:  # e.g. an export traced with a fixed batch size
            raise ExportError(f"export fails at batch {batch}: {exc}") from exc
    bad = {k: v for k, v in diffs.items() if not v <= atol}  # NaN counts as bad
    if bad:
        raise ExportError(f"export differs from eager PyTorch beyond {atol}: {bad}")
    return diffs


def export_model(
    net: nn.Module,
    input_shape: tuple[int, ...],
    out_dir: Path,
    *,
    formats: tuple[str, ...] = FORMATS,
    check_batches: tuple[int, ...] = (1, 8),
    atol: float = 1e-4,
    opset: int = 17,
    dynamo: bool = False,
) -> ExportResult:
    """Export ``net`` (put in eval mode, fp32, CPU) for inputs of ``input_shape`` (N first)."""
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ExportError(f"unknown export formats {sorted(unknown)}; known: {FORMATS}")
    net = net.eval().float().cpu()
    out_dir.mkdir(parents=True, exist_ok=True)
    example = _example(input_shape, 2, seed=0)
    files: dict[str, Path] = {}
    try:
        if "torchscript" in formats:
            files[TORCHSCRIPT_FILE] = export_torchscript(net, example, out_dir / TORCHSCRIPT_FILE)
        if "onnx" in formats:
            files[ONNX_FILE] = export_onnx(
                net, example, out_dir / ONNX_FILE, opset=opset, dynamo=dynamo
            )
    except Exception as exc:  # tracing/exporting errors come in many types
        raise ExportError(f"export failed: {exc}") from exc
    diffs = check_parity(net, files, input_shape, check_batches=check_batches, atol=atol)
    log.info("exported %s, parity %s", sorted(files), {k: f"{v:.1e}" for k, v in diffs.items()})
    return ExportResult(files=files, max_abs_diff=diffs)

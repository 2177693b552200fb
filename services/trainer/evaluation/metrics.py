"""Paired image-quality metrics on held-out pairs: L1, PSNR, SSIM, FSIM (via ``piq``).

Images follow the project convention, (N, 3, H, W) float in [-1, 1]; they are mapped to
[0, 1] (and clamped) for piq. Every metric is computed per image and averaged over images, so
``MetricAccumulator`` over several batches gives the same numbers as one call on all images.

- ``val_l1``: mean absolute error in [-1, 1] units (the pix2pix L1 term); lower is better.
  ``pairwise_l1`` measures the same way how far apart a model's variations of one input are.
- ``psnr``: dB on [0, 1] images; piq adds 1e-8 to the MSE, so identical images give a finite
  80 dB (the cap, never inf: results stay JSON-safe and averageable); higher is better.
- ``ssim``: piq.ssim with its 11x11 Gaussian window; images with a side under 11 px are first
  upsampled (nearest) to 11 px, since the window cannot be larger than the image.
- ``fsim``: piq.fsim (FSIMc, chromatic). Its log-Gabor filters have wavelengths 6, 12, 24 and
  48 px, so images with a side under ``FSIM_MIN_SIZE`` (48) are upsampled (bilinear) to it:
  smaller images would leave the coarsest scale without any content to measure. Larger
  images are average-pooled by piq itself to ~256 px, as the reference MATLAB code does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import piq
import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)

PAIRED_METRICS: tuple[str, ...] = ("val_l1", "psnr", "ssim", "fsim")
DEFAULT_METRICS: tuple[str, ...] = PAIRED_METRICS
SSIM_MIN_SIZE = 11  # piq.ssim's default Gaussian window
FSIM_MIN_SIZE = 48  # the wavelength of FSIM's coarsest log-Gabor scale (6 * 2**3)


def to_unit(x: Tensor) -> Tensor:
    """(N, 3, H, W) in [-1, 1] -> float32 in [0, 1], clamped (piq rejects values outside)."""
    return ((x.detach().float() + 1.0) * 0.5).clamp_(0.0, 1.0)


def _at_least(x: Tensor, size: int, mode: str) -> Tensor:
    """Upsample (N, C, H, W) so that its shorter side is at least `size` (aspect kept)."""
    h, w = x.shape[-2:]
    if min(h, w) >= size:
        return x
    scale = size / min(h, w)
    new_hw = (max(size, math.ceil(h * scale)), max(size, math.ceil(w * scale)))
    if mode == "nearest":
        return F.interpolate(x, size=new_hw, mode="nearest")
    return F.interpolate(x, size=new_hw, mode=mode, align_corners=False).clamp_(0.0, 1.0)


def _l1(fake: Tensor, real: Tensor) -> Tensor:
    # fake, real: (N, 3, H, W) in [-1, 1] -> (N,)
    return (fake.detach().float() - real.detach().float()).abs().flatten(1).mean(1)


def pairwise_l1(variants: Tensor) -> Tensor:
    """(N, k, 3, H, W) in [-1, 1], k >= 2 images of each item -> (N,): the mean L1 (val_l1's
    units) over each item's k (k - 1) / 2 pairs; 0 when a model ignores its noise."""
    n, k = variants.shape[:2]
    if k < 2:
        raise ValueError(f"pairwise_l1 needs at least 2 images per item, got {k}")
    first, second = torch.triu_indices(k, k, offset=1)  # (P,), (P,): every pair i < j
    a, b = variants[:, first].flatten(0, 1), variants[:, second].flatten(0, 1)  # (N * P, 3, H, W)
    return _l1(a, b).view(n, -1).mean(1)  # (N, P) -> (N,)


def _psnr(fake01: Tensor, real01: Tensor) -> Tensor:
    return piq.psnr(fake01, real01, data_range=1.0, reduction="none")  # (N,)


def _ssim(fake01: Tensor, real01: Tensor) -> Tensor:
    fake01, real01 = (_at_least(t, SSIM_MIN_SIZE, "nearest") for t in (fake01, real01))
    out = piq.ssim(fake01, real01, data_range=1.0, reduction="none")  # (N,)
    assert isinstance(out, Tensor)
    return out


def _fsim(fake01: Tensor, real01: Tensor) -> Tensor:
    fake01, real01 = (_at_least(t, FSIM_MIN_SIZE, "bilinear") for t in (fake01, real01))
    return piq.fsim(fake01, real01, data_range=1.0, reduction="none")  # (N,)


# name -> per-image metric; l1 works on [-1, 1] images, the others on [0, 1]
_UNIT_METRICS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "psnr": _psnr,
    "ssim": _ssim,
    "fsim": _fsim,
}


def _check(fake: Tensor, real: Tensor) -> None:
    if fake.ndim != 4 or fake.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) images, got fake {tuple(fake.shape)}")
    if fake.shape != real.shape:
        raise ValueError(
            f"fake and real must have the same shape: {tuple(fake.shape)} vs {tuple(real.shape)}"
        )


def _validate_names(metrics: Sequence[str]) -> None:
    unknown = [m for m in metrics if m not in PAIRED_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {list(PAIRED_METRICS)}")


def per_image_metrics(
    fake: Tensor, real: Tensor, metrics: Sequence[str] = DEFAULT_METRICS
) -> dict[str, Tensor]:
    """name -> (N,) float64 CPU per-image values, for fake/real (N, 3, H, W) in [-1, 1]."""
    _validate_names(metrics)
    _check(fake, real)
    out: dict[str, Tensor] = {}
    with torch.no_grad():
        if "val_l1" in metrics:
            out["val_l1"] = _l1(fake, real)
        unit = [m for m in metrics if m in _UNIT_METRICS]
        if unit:
            fake01, real01 = to_unit(fake), to_unit(real)
            for name in unit:
                out[name] = _UNIT_METRICS[name](fake01, real01)
    return {k: v.detach().double().cpu() for k, v in out.items()}


def compute_metrics(
    fake: Tensor, real: Tensor | None, *, metrics: Sequence[str] = DEFAULT_METRICS
) -> dict[str, float]:
    """Mean of each metric over the batch: {"val_l1": ..., "psnr": ..., "ssim": ..., "fsim": ...}.

    fake, real: (N, 3, H, W) in [-1, 1], same shape. Every metric here compares against a
    reference: with ``real=None`` (an unconditional generator) the result is empty, and FID
    (``services.trainer.evaluation.fid``) is what measures such a model.
    """
    if real is None:
        _validate_names(metrics)
        log.debug("compute_metrics: no reference images, paired metrics skipped")
        return {}
    values = per_image_metrics(fake, real, metrics)
    return {k: float(v.mean()) for k, v in values.items()}


class MetricAccumulator:
    """Means of the paired metrics over many batches, without keeping the images.

    >>> acc = MetricAccumulator()
    >>> for fake_B, real_B in batches:
    ...     acc.update(fake_B, real_B)
    >>> acc.compute()  # {"val_l1": ..., "psnr": ..., "ssim": ..., "fsim": ...}
    """

    def __init__(self, metrics: Sequence[str] = DEFAULT_METRICS) -> None:
        _validate_names(metrics)
        self.metrics = tuple(metrics)
        self.reset()

    def reset(self) -> None:
        self._sums: dict[str, float] = dict.fromkeys(self.metrics, 0.0)
        self.count = 0

    def update(self, fake: Tensor, real: Tensor | None) -> None:
        """Add a batch (N, 3, H, W) in [-1, 1]; a batch without reference images is ignored."""
        if real is None:
            return
        values = per_image_metrics(fake, real, self.metrics)
        for name, v in values.items():
            self._sums[name] += float(v.sum())
        self.count += fake.shape[0]

    def compute(self) -> dict[str, float]:
        """name -> mean over every image seen; empty when no paired batch was added."""
        if self.count == 0:
            return {}
        return {name: s / self.count for name, s in self._sums.items()}

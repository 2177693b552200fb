"""Is an image a drawing (route it to sketch2photo) or a photo (route it to photo2sketch)?

Six cheap statistics of a copy whose longest side is 128 px, combined by a logistic
regression. A drawing is paper (bright, flat, grey or white, maybe unevenly lit) with thin
strokes on it; a photo has smooth shading, large dark regions and uneven light. Colour is
deliberately not used: grey photos and coloured-pen drawings both exist.

Luminance ``g`` is in [0, 1]; the paper estimate ``bg`` is ``g`` dilated (7x7 max, which
removes strokes thinner than ~6 px) and box-blurred; ``n = g / bg`` is the image relative
to its paper (1 on paper, low on strokes), so a grey or shadowed sheet of paper looks the
same as a white one.

The weights were fitted (class- and group-balanced, L2-regularised) on FS2K face photos
vs. hand-drawn sketches (official train split), edges2shoes edge maps vs. shoe photos, CMP
facade photos, CIFAR-10 cats and dogs and the project's own synthetic pairs
(``services.trainer.data.synthetic``, 64 to 256 px); the real images also augmented: grey,
dark, noisy, JPEG'd and cut-out-on-white photos, coloured-pen, phone-photographed, blurred
and JPEG'd drawings. ``benchmarks/drawing_detector.py`` measures the accuracy on the real data.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from shared.image_ops import to_rgb

__all__ = ["drawing_features", "drawing_probability", "looks_like_drawing"]

SIDE = 128  # the statistics are computed at this longest side (up- or downscaled)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# feature name -> logistic-regression weight (+: drawing), fitted as the module doc says;
# "smooth" and "gentle_slope" overlap, their difference separates shading from hatching
WEIGHTS: dict[str, float] = {
    "thin": 6.108,  # share of ink pixels with paper within 1 px (thin strokes)
    "smooth": -48.24,  # share of non-paper pixels on a gentle slope (photo shading)
    "fine_detail": 212.2,  # mean |g - box3(g)|: strokes, paper grain and hatching
    "paper_spread": -29.15,  # std of the paper estimate (uneven light, big dark regions)
    "gentle_slope": 25.13,  # share of pixels on a gentle slope after a 3x3 blur
    "dark": -18.72,  # share of pixels with luminance < 0.2
}
BIAS = -1.77


def _max_filter(a: np.ndarray, k: int) -> np.ndarray:
    """k x k grey dilation with edge padding (separable). a: (H, W)."""
    r = k // 2
    p = np.pad(a, r, mode="edge")  # (H+2r, W+2r)
    rows = p[:, : a.shape[1]].copy()
    for i in range(1, 2 * r + 1):
        np.maximum(rows, p[:, i : i + a.shape[1]], out=rows)
    out = rows[: a.shape[0]].copy()
    for i in range(1, 2 * r + 1):
        np.maximum(out, rows[i : i + a.shape[0]], out=out)
    return out  # (H, W)


def _box_filter(a: np.ndarray, k: int) -> np.ndarray:
    """k x k mean with edge padding, by summed-area table. a: (H, W)."""
    r = k // 2
    H, W = a.shape
    c = np.pad(np.pad(a, r, mode="edge").cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return (c[k : k + H, k : k + W] - c[:H, k : k + W] - c[k : k + H, :W] + c[:H, :W]) / (k * k)


def _slope(a: np.ndarray) -> np.ndarray:
    """Largest absolute forward difference, (H-1, W-1)."""
    return np.maximum(np.abs(np.diff(a, axis=1))[:-1], np.abs(np.diff(a, axis=0))[:, :-1])


def drawing_features(img: Image.Image) -> dict[str, float]:
    """The statistics ``WEIGHTS`` combines (see there), from an image of any mode
    (transparency is put on white first)."""
    w, h = img.size
    scale = SIDE / max(w, h)
    size = (max(16, round(w * scale)), max(16, round(h * scale)))  # 16: keep slopes defined
    small = to_rgb(img).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    rgb = np.asarray(small, dtype=np.float32) / 255.0  # (H, W, 3)
    g = rgb @ _LUMA  # (H, W) luminance
    bg = _box_filter(_max_filter(g, 7), 7)  # (H, W) the paper, strokes removed
    n = np.clip(g / np.maximum(bg, 0.04), 0.0, 1.0)  # (H, W) 1 on paper
    ink = n < 0.85
    near_paper = _max_filter(n, 3) > 0.92
    slope = _slope(g)  # (H-1, W-1)
    g3 = _box_filter(g, 3)
    blurred_slope = _slope(g3)
    return {
        "thin": float(near_paper[ink].mean()) if ink.any() else 1.0,
        "smooth": float(((slope > 0.008) & (slope < 0.04) & (n[:-1, :-1] < 0.97)).mean()),
        "fine_detail": float(np.abs(g - g3).mean()),
        "paper_spread": float(bg.std()),
        "gentle_slope": float(((blurred_slope > 0.004) & (blurred_slope < 0.02)).mean()),
        "dark": float((g < 0.2).mean()),
    }


def drawing_probability(img: Image.Image) -> float:
    """P(drawing) in [0, 1] from the logistic regression over ``drawing_features``."""
    f = drawing_features(img)
    z = BIAS + sum(WEIGHTS[k] * v for k, v in f.items())
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def looks_like_drawing(img: Image.Image) -> tuple[bool, float]:
    """(is_drawing, confidence): a line drawing or sketch (True) or a photo (False).

    confidence is the probability of the answer given, so it lies in [0.5, 1]. Takes
    about 3 ms on a decoded image (the downscale is most of it for a large one)."""
    p = drawing_probability(img)
    return (True, p) if p >= 0.5 else (False, 1.0 - p)

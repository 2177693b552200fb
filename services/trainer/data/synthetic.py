"""A synthetic paired sketch/photo dataset the project generates itself.

Each pair is a tiny scene of one to three filled shapes on a tinted, gradient background:

- the *photo* has shaded shapes (a sphere-like highlight on circles and ellipses, a linear
  light gradient on polygons), a soft drop shadow, and a background tint with a gradient;
- the *sketch* is the same shapes' outlines drawn in black on white, with a slightly wobbly,
  varying-width line like a hand drawing; later shapes hide the lines of earlier ones, as
  they hide them in the photo.

The colour of a shape is a function of its kind (with a little jitter), so sketch -> photo is
well-posed and a small pix2pix learns it in a minute or two on a CPU:

    circle: red    rectangle: blue    triangle: green    ellipse: amber

Everything is deterministic from a seed: `make_pair(rng)` uses nothing but `rng`, and pair `i`
of a split is drawn from `np.random.default_rng([seed, split_id, i])`, so `SyntheticPairs`
(generated on the fly) and `write_paired_folders` (written to disk) give the same images for
the same (seed, split, index). Used by the tests, the offline demo, and the bootstrap model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from torch import Tensor

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("circle", "rectangle", "triangle", "ellipse")
# base RGB colour per kind; each shape gets +-JITTER per channel
COLOURS: dict[str, tuple[int, int, int]] = {
    "circle": (200, 45, 40),
    "rectangle": (40, 80, 200),
    "triangle": (45, 155, 65),
    "ellipse": (230, 165, 30),
}
JITTER = 14
SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
_SS = 2  # supersampling factor for anti-aliased edges and lines


def _shape_polygon(
    rng: np.random.Generator, kind: str, size: int
) -> tuple[np.ndarray, tuple[float, float], float]:
    """Polygon (K, 2) of one shape in pixel coordinates, its centre and its radius."""
    cx, cy = rng.uniform(0.28, 0.72, 2) * size
    r = rng.uniform(0.13, 0.24) * size
    angle = rng.uniform(-0.4, 0.4)
    if kind == "circle":
        t = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * r
    elif kind == "ellipse":
        t = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)
        aspect = rng.uniform(0.45, 0.65)
        pts = np.stack([np.cos(t), aspect * np.sin(t)], 1) * r * 1.15
    elif kind == "rectangle":
        w, h = r, r * rng.uniform(0.6, 1.0)
        pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]])
    else:  # triangle, apex roughly up
        t = np.array([-np.pi / 2, np.pi / 6, 5 * np.pi / 6]) + rng.uniform(-0.25, 0.25, 3)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * r * 1.15
    if kind != "circle":
        c, s = np.cos(angle), np.sin(angle)
        pts = pts @ np.array([[c, s], [-s, c]])
    return pts + np.array([cx, cy]), (float(cx), float(cy)), float(r)


def _wobble(rng: np.random.Generator, pts: np.ndarray, size: int) -> np.ndarray:
    """A hand-drawn version of a closed polygon: subdivided, jittered, slightly overlapping."""
    closed = np.concatenate([pts, pts[:1]])
    seg = max(2, 64 // len(pts))
    t = np.linspace(0.0, 1.0, seg, endpoint=False)[None, :, None]
    dense = (closed[:-1, None] * (1 - t) + closed[1:, None] * t).reshape(-1, 2)  # (M, 2)
    # smooth low-frequency jitter: random walk, pulled back so the loop still closes
    steps = rng.normal(0.0, 0.0025 * size, dense.shape)
    walk = np.cumsum(steps, 0)
    walk -= np.linspace(0.0, 1.0, len(dense))[:, None] * walk[-1]
    dense = dense + walk + rng.normal(0.0, 0.0012 * size, dense.shape)
    overlap = int(rng.integers(1, 4))  # the stroke ends a little past its start
    return np.concatenate([dense, dense[:overlap]])


def _mask(pts: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased fill mask (H, W) in [0, 1] of a polygon."""
    im = Image.new("L", (size * _SS, size * _SS), 0)
    ImageDraw.Draw(im).polygon([tuple(p) for p in (pts * _SS).tolist()], fill=255)
    im = im.resize((size, size), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.float32) / 255.0


def make_pair(rng: np.random.Generator, size: int = 128) -> tuple[Image.Image, Image.Image]:
    """One (sketch, photo) pair of RGB images of `size` x `size`, drawn from `rng` only."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5  # (H, W) each

    # background: pale tint with a linear gradient in a random direction
    tint = (222.0 + rng.uniform(-28.0, 22.0, 3)).astype(np.float32)
    theta = rng.uniform(0.0, 2 * np.pi)
    ramp = (np.cos(theta) * xx + np.sin(theta) * yy) / size  # roughly [-1.4, 1.4]
    photo = tint * (0.93 + 0.08 * ramp)[..., None]  # (H, W, 3)

    n_shapes = int(rng.integers(1, 4))
    shapes = []
    for _ in range(n_shapes):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        pts, centre, r = _shape_polygon(rng, kind, size)
        colour = (np.array(COLOURS[kind]) + rng.uniform(-JITTER, JITTER, 3)).astype(np.float32)
        shapes.append((kind, pts, centre, r, colour, _mask(pts, size)))

    # soft shadow of all shapes, cast down-right
    union = np.clip(sum(s[5] for s in shapes), 0.0, 1.0)
    shadow_im = Image.fromarray((union * 255).astype(np.uint8), "L")
    dx, dy = round(0.035 * size), round(0.045 * size)
    shadow_im = shadow_im.transform(
        shadow_im.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy), fillcolor=0
    ).filter(ImageFilter.GaussianBlur(radius=0.03 * size))
    shadow = np.asarray(shadow_im, np.float32) / 255.0
    photo = photo * (1.0 - 0.38 * shadow)[..., None]

    # the sketch: white page, outlines drawn back to front, each shape erasing what it covers
    sketch_im = Image.new("L", (size * _SS, size * _SS), 255)
    draw = ImageDraw.Draw(sketch_im)

    for kind, pts, (cx, cy), r, colour, m in shapes:
        # shade and blend inside the shape's bounding box only
        x0, y0 = np.clip(np.floor(pts.min(0)).astype(int) - 1, 0, size)
        x1, y1 = np.clip(np.ceil(pts.max(0)).astype(int) + 2, 0, size)
        bx, by, bm = xx[y0:y1, x0:x1], yy[y0:y1, x0:x1], m[y0:y1, x0:x1, None]
        if kind in ("circle", "ellipse"):  # sphere-like: highlight up-left of centre
            hx, hy = cx - 0.35 * r, cy - 0.4 * r
            d = np.sqrt((bx - hx) ** 2 + (by - hy) ** 2) / (1.6 * r)
            shade = 1.22 - 0.5 * np.minimum(d, 1.2)
        else:  # flat face lit from the top-left
            shade = 1.02 - 0.3 * ((bx - cx) + (by - cy)) / (2 * r)
        fill = np.minimum(colour * shade[..., None], 255.0)  # (h, w, 3)
        photo[y0:y1, x0:x1] = photo[y0:y1, x0:x1] * (1.0 - bm) + fill * bm

        draw.polygon([tuple(p) for p in (pts * _SS).tolist()], fill=255)
        width = max(1, round(float(rng.uniform(1.0, 2.0)) * size / 128 * _SS))
        line = _wobble(rng, pts, size) * _SS
        draw.line([tuple(p) for p in line.tolist()], fill=0, width=width, joint="curve")

    sketch = sketch_im.resize((size, size), Image.Resampling.BOX).convert("RGB")
    photo_im = Image.fromarray(np.clip(photo + 0.5, 0, 255).astype(np.uint8), "RGB")
    return sketch, photo_im


def pair_rng(seed: int, index: int, split: str = "train") -> np.random.Generator:
    """The generator that pair `index` of `split` is drawn from."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    return np.random.default_rng([seed, SPLITS[split], index])


def write_paired_folders(
    root: Path, *, n_train: int, n_val: int, size: int = 128, seed: int = 0
) -> None:
    """Write root/{train,val}/{photos,sketches}/NNNNN.png (the paired-folders layout)."""
    root = Path(root)
    for split, n in (("train", n_train), ("val", n_val)):
        photos, sketches = root / split / "photos", root / split / "sketches"
        photos.mkdir(parents=True, exist_ok=True)
        sketches.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            sketch, photo = make_pair(pair_rng(seed, i, split), size)
            sketch.save(sketches / f"{i:05d}.png")
            photo.save(photos / f"{i:05d}.png")
    log.info("wrote %d train + %d val synthetic pairs (%d px) to %s", n_train, n_val, size, root)


def to_tensor(im: Image.Image) -> Tensor:
    """RGB PIL image -> (3, H, W) float32 in [-1, 1]."""
    arr = np.asarray(im.convert("RGB"), dtype=np.float32)  # (H, W, 3) in [0, 255]
    return torch.from_numpy(arr / 127.5 - 1.0).permute(2, 0, 1).contiguous()


class SyntheticPairs(torch.utils.data.Dataset[dict[str, Tensor]]):
    """`n` pairs generated on the fly; item i depends only on (seed, split, i).

    Items: {"A": sketch (3, H, W), "B": photo (3, H, W)}, float32 in [-1, 1].
    """

    def __init__(self, n: int, size: int = 128, seed: int = 0, *, split: str = "train") -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        pair_rng(seed, 0, split)  # validates split
        self.n, self.size, self.seed, self.split = n, size, seed, split

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} pairs")
        i %= self.n
        sketch, photo = make_pair(pair_rng(self.seed, i, self.split), self.size)
        return {"A": to_tensor(sketch), "B": to_tensor(photo)}

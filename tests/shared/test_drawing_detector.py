"""shared.drawing_detector: does model=auto tell drawings from photos?"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from shared.images import decode, looks_like_drawing

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
LIMITS = {"max_bytes": 1 << 26, "max_pixels": 1 << 26}
SEEDS = range(6)


def strokes(seed: int, colours=((0, 0, 0),), width=2, paper=(255, 255, 255), size=256):
    """Outlines, polylines and boxes drawn with a pen on paper."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), paper)
    draw = ImageDraw.Draw(img)
    for i in range(12):
        c = tuple(colours[i % len(colours)])
        x0, y0 = (int(v) for v in rng.integers(10, size - 60, 2))
        box = [x0, y0, x0 + int(rng.integers(20, 50)), y0 + int(rng.integers(20, 50))]
        kind = i % 3
        if kind == 0:
            draw.ellipse(box, outline=c, width=width)
        elif kind == 1:
            draw.rectangle(box, outline=c, width=width)
        else:
            draw.line([tuple(map(int, p)) for p in rng.integers(10, size - 10, (4, 2))], c, width)
    return img


def pencil(seed: int) -> Image.Image:
    """Grey pencil lines, hatched shading and paper grain."""
    rng = np.random.default_rng(seed)
    img = strokes(seed, colours=((60, 60, 60), (95, 95, 95)), width=1)
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = (int(v) for v in rng.integers(10, 186, 2))
        for k in range(0, 50, 4):
            g = int(rng.integers(110, 170))
            draw.line([(x0 + k, y0), (x0 + k + 15, y0 + 50)], fill=(g, g, g), width=1)
    grain = rng.normal(0, 3, (256, 256, 1))
    return Image.fromarray(np.uint8(np.clip(np.asarray(img, np.float32) + grain, 0, 255)))


def transparent_sketch(seed: int) -> Image.Image:
    """Black ink on a transparent background, as drawing apps export it, decoded."""
    ink = 255 - np.asarray(strokes(seed).convert("L"))
    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[..., 3] = ink
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, "PNG")
    return decode(buf.getvalue(), **LIMITS)


def field(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """Smooth random texture in [0, 1] (sum of upsampled noise octaves)."""
    f = np.zeros((size, size), np.float32)
    for octave in range(5):
        n = 2 ** (octave + 2)
        layer = Image.fromarray(rng.normal(0, 1, (n, n)).astype(np.float32))
        f += np.asarray(layer.resize((size, size), Image.Resampling.BICUBIC)) / 1.6**octave
    return (f - f.min()) / (np.ptp(f) + 1e-6)


def photo_like(seed: int, grey: bool = False, gain: float = 1.0) -> Image.Image:
    """Colour gradients over a smooth texture, plus sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:256, 0:256] / 256
    rgb = np.stack(
        [field(rng) * 0.6 + 0.3 * x, field(rng) * 0.6 + 0.3 * y, field(rng) * 0.6 + 0.2], -1
    )
    rgb = np.clip((rgb + rng.normal(0, 0.03, (256, 256, 1))) * gain, 0, 1)
    img = Image.fromarray(np.uint8(rgb * 255))
    return img.convert("L").convert("RGB") if grey else img


def object_on_white(seed: int) -> Image.Image:
    """A big, shaded, coloured object on a white background (a product shot)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:256, 0:256] / 256
    inside = (((x - 0.5) / 0.32) ** 2 + ((y - 0.55) / 0.38) ** 2 < 1)[..., None]
    shade = np.clip(1.0 - 0.6 * x - 0.2 * y + 0.15 * field(rng), 0, 1)[..., None]
    colour = np.array([[0.8, 0.2, 0.1], [0.1, 0.3, 0.8], [0.2, 0.6, 0.2]][seed % 3])
    rgb = np.where(inside, shade * colour + 0.1, 1.0)
    img = Image.fromarray(np.uint8(np.clip(rgb, 0, 1) * 255))
    return img.filter(ImageFilter.GaussianBlur(0.7))


DRAWINGS = {
    "black pen": strokes,
    "thick marker": lambda s: strokes(s, width=4),
    "coloured pens": lambda s: strokes(s, colours=((220, 30, 30), (30, 60, 220), (20, 150, 40))),
    "pencil sketch": pencil,
    "transparent background": transparent_sketch,
    "grey paper": lambda s: strokes(s, paper=(200, 195, 185)),
}
PHOTOS = {
    "colour photo": photo_like,
    "grey photo": lambda s: photo_like(s, grey=True),
    "dark photo": lambda s: photo_like(s, gain=0.35),
    "object on white": object_on_white,
}


@pytest.mark.parametrize("make", DRAWINGS.values(), ids=DRAWINGS.keys())
def test_drawings_are_drawings(make):
    for seed in SEEDS:
        is_drawing, confidence = looks_like_drawing(make(seed))
        assert is_drawing, seed
        assert 0.9 <= confidence <= 1.0


@pytest.mark.parametrize("make", PHOTOS.values(), ids=PHOTOS.keys())
def test_photos_are_photos(make):
    for seed in SEEDS:
        is_drawing, confidence = looks_like_drawing(make(seed))
        assert not is_drawing, seed
        assert 0.9 <= confidence <= 1.0


@pytest.mark.parametrize(
    "img",
    [
        Image.new("RGB", (1, 1), "white"),
        Image.new("L", (3, 500), 0),
        Image.new("RGBA", (40, 30), (0, 0, 0, 0)),
        Image.new("RGB", (64, 64), (128, 128, 128)),
    ],
    ids=["1x1", "3x500 black", "transparent", "flat grey"],
)
def test_degenerate_images_get_an_answer(img):
    is_drawing, confidence = looks_like_drawing(img)
    assert isinstance(is_drawing, bool)
    assert 0.5 <= confidence <= 1.0
    assert math.isfinite(confidence)


def _fs2k_sample() -> list[tuple[Path, bool]]:
    fs2k = DATA / "fs2k"
    names = [e["image_name"] for e in json.loads((fs2k / "anno_val.json").read_text())][::10]
    out = []
    for name in names:  # "photoN/imageXXXX"
        style, stem = name.split("/")
        out.append((fs2k / "photo" / f"{name}.jpg", False))
        sketch = (
            fs2k
            / "sketch"
            / style.replace("photo", "sketch")
            / f"{stem.replace('image', 'sketch')}.jpg"
        )
        out.append((sketch, True))
    return out


@pytest.mark.skipif(not (DATA / "fs2k").is_dir(), reason="no shared data set here")
def test_real_faces_sketches_and_shoes():
    hits = []
    for path, is_drawing in _fs2k_sample():
        hits.append(looks_like_drawing(decode(path.read_bytes(), **LIMITS))[0] == is_drawing)
    for path in sorted((DATA / "edges2shoes_100" / "val").glob("*.jpg")):
        pair = decode(path.read_bytes(), **LIMITS)
        w, h = pair.size
        hits.append(looks_like_drawing(pair.crop((0, 0, w // 2, h)))[0])  # edges
        hits.append(not looks_like_drawing(pair.crop((w // 2, 0, w, h)))[0])  # photo
    assert len(hits) >= 80
    assert np.mean(hits) >= 0.95

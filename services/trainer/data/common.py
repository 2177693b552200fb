"""What every dataset loader shares: finding image files, loading them, the paired transform.

- Files are identified by content, not suffix: a file with a known image suffix is listed
  without opening it (PIL opens it by content later, so FS2K's PNG files named .jpg work);
  a file with a missing or unusual suffix is listed only if PIL can identify it.
- Images load as RGB with EXIF orientation applied, transparency composited on white,
  grayscale / palette / 16-bit converted.
- `PairedTransform`: resize to load_size, then for training a random crop to image_size and a
  random horizontal flip, the SAME crop and flip for every image of an item (A and B stay
  aligned); for evaluation a plain resize to image_size. Output (3, H, W) float32 in [-1, 1].
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from services.trainer.errors import DatasetLayoutError
from shared.images import Fit, fit_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
)
# never images: skipped without opening
NON_IMAGE_SUFFIXES = frozenset(
    {".txt", ".md", ".json", ".csv", ".py", ".yaml", ".yml", ".xml", ".html", ".pdf", ".zip"}
)


class ItemDataset(torch.utils.data.Dataset[dict[str, Any]]):
    """Base of every loader here: sized, items are dicts, `unmatched` lists skipped files."""

    unmatched: list[str]

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict[str, Any]:
        raise NotImplementedError

    def attribute_labels(self) -> Tensor | None:
        """(N, K) long: every item's label row (FS2K: its 7 attributes), read without loading
        an image; None for a loader whose items carry no labels."""
        return None


def attribute_rows(dataset: Any) -> Tensor | None:
    """``dataset.attribute_labels()`` through Subsets and wrappers holding ``.dataset`` (the
    loop's SeededItems): the label rows of the items the wrapper yields, in its order."""
    if isinstance(dataset, torch.utils.data.Subset):
        rows = attribute_rows(dataset.dataset)
        return None if rows is None else rows[list(dataset.indices)]
    if isinstance(dataset, ItemDataset):
        return dataset.attribute_labels()
    inner = getattr(dataset, "dataset", None)
    return None if inner is None else attribute_rows(inner)


def _looks_like_image(path: Path) -> bool:
    """Known image suffix: yes without opening; odd or missing suffix: if PIL identifies it."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return True
    if suffix in NON_IMAGE_SUFFIXES or path.name.startswith("."):
        return False
    try:
        with Image.open(path):  # reads the header only
            return True
    except (UnidentifiedImageError, OSError):
        return False


def is_image_file(path: Path) -> bool:
    """True for a file PIL can read (by suffix, or by content where the suffix is odd)."""
    return path.is_file() and _looks_like_image(path)


def list_images(folder: Path) -> tuple[list[Path], list[str]]:
    """Image files directly in `folder`, sorted by name, and the names of what was skipped."""
    images: list[Path] = []
    skipped: list[str] = []
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        p = Path(e.path)
        if e.is_file() and _looks_like_image(p):
            images.append(p)
        elif not e.name.startswith("."):
            skipped.append(e.name + ("/" if e.is_dir() else ""))
    return images, skipped


def has_images(folder: Path) -> bool:
    """Whether `folder` directly holds at least one image file (stops at the first)."""
    with os.scandir(folder) as it:
        return any(e.is_file() and _looks_like_image(Path(e.path)) for e in it)


def report_unmatched(what: str, unmatched: Sequence[str], reason: str) -> None:
    """Log a warning for files a loader could not use (count and a few examples)."""
    if unmatched:
        examples = ", ".join(unmatched[:5]) + (", ..." if len(unmatched) > 5 else "")
        log.warning("%s: %d %s, skipped (e.g. %s)", what, len(unmatched), reason, examples)


def split_dir(root: Path, split: str) -> Path:
    """root/split; "val" falls back to "test" (and back) when only the other exists."""
    d = root / split
    if d.is_dir():
        return d
    alt = {"val": "test", "test": "val"}.get(split)
    if alt and (root / alt).is_dir():
        log.info("%s has no %s/ folder; using %s/", root, split, alt)
        return root / alt
    found = ", ".join(describe_folder(root)) or "nothing"
    raise DatasetLayoutError(f"expected a {split}/ folder in {root}; found: {found}")


def describe_folder(folder: Path, limit: int = 8) -> list[str]:
    """A few entries of a folder for error messages ("photos/", "notes.txt")."""
    if not folder.is_dir():
        return [f"{folder} does not exist or is not a folder"]
    names = sorted(e.name + ("/" if e.is_dir() else "") for e in os.scandir(folder))
    return names[:limit] + ([f"... ({len(names) - limit} more)"] if len(names) > limit else [])


def load_rgb(path: Path | str) -> Image.Image:
    """Open an image by its content and return it as 8-bit RGB (alpha composited on white)."""
    with Image.open(path) as f:
        f.seek(0)  # first frame of animations / multi-page TIFF
        im: Image.Image = ImageOps.exif_transpose(f)
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            arr = np.asarray(im, dtype=np.float32)
            scale = 255.0 / 65535.0 if arr.max() > 255 else 1.0
            im = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return im.convert("RGB")


def to_tensor(im: Image.Image) -> Tensor:
    """RGB PIL image -> (3, H, W) float32 in [-1, 1]."""
    arr = np.asarray(im, dtype=np.float32)  # (H, W, 3) in [0, 255]
    return torch.from_numpy(arr / 127.5 - 1.0).permute(2, 0, 1).contiguous()


@dataclass(frozen=True)
class PairedTransform:
    """Resize (+ for training: random crop and flip, shared by all images of one item).

    image_size: output side. augment: resize to load_size (default 286/256 of image_size, as
    pix2pix), random crop to image_size, random horizontal flip; without augment the images are
    resized straight to image_size and load_size is unused. fit: how a non-square image becomes
    square ("resize" stretches; "letterbox" pads with white, as the worker does for a model
    whose manifest says so: ``shared.images.fit_image``).
    Randomness comes from torch's global generator (seeded per DataLoader worker).
    """

    image_size: int = 256
    load_size: int | None = None
    augment: bool = False
    fit: Fit = "resize"

    def __post_init__(self) -> None:
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if self.load_size is not None and self.load_size < self.image_size:
            raise ValueError(f"load_size {self.load_size} < image_size {self.image_size}")

    @property
    def resize_to(self) -> int:
        """Side the images are resized to before the random crop (training only)."""
        if self.load_size is not None:
            return self.load_size
        return round(self.image_size * 286 / 256)

    def __call__(self, *images: Image.Image) -> list[Tensor]:
        s, L = self.image_size, self.resize_to
        if not self.augment:  # evaluation: straight to the output size
            return [to_tensor(self._square(im, s)) for im in images]
        out = [self._square(im, L) for im in images]
        x = int(torch.randint(0, L - s + 1, ()).item())
        y = int(torch.randint(0, L - s + 1, ()).item())
        flip = bool(torch.rand(()) < 0.5)
        out = [im.crop((x, y, x + s, y + s)) for im in out]
        if flip:
            out = [im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in out]
        return [to_tensor(im) for im in out]

    def _square(self, im: Image.Image, side: int) -> Image.Image:
        if self.fit == "letterbox":
            return fit_image(im, side, fit="letterbox")
        return im.resize((side, side), Image.Resampling.BICUBIC)


def make_transform(
    split: str, image_size: int, load_size: int | None, augment: bool | None, fit: Fit = "resize"
) -> PairedTransform:
    """Default: augment for the train split only."""
    aug = split == "train" if augment is None else augment
    return PairedTransform(image_size=image_size, load_size=load_size, augment=aug, fit=fit)

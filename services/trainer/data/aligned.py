"""Side-by-side AB images, the standard pix2pix paired format (facades, edges2shoes).

    root/train/*.jpg, root/val/*.jpg (or test/): each image is A (left half) | B (right half)

Which half is the drawing depends on the dataset: edges2shoes has edges on the left and the
photo on the right (sketch -> photo is "AtoB"); facades has the photo on the left and the label
map on the right (label -> photo is "BtoA", as pix2pix trains it).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PIL import Image

from services.trainer.data.common import (
    DatasetLayoutError,
    ItemDataset,
    list_images,
    load_rgb,
    make_transform,
    report_unmatched,
    split_dir,
)
from shared.images import Fit

log = logging.getLogger(__name__)

DIRECTIONS = ("AtoB", "BtoA")


def split_ab(im: Image.Image) -> tuple[Image.Image, Image.Image]:
    """(left half, right half) of a side-by-side image; an odd middle column goes right."""
    w, h = im.size
    half = w // 2
    return im.crop((0, 0, half, h)), im.crop((half, 0, w, h))


class AlignedABDataset(ItemDataset):
    """Items {"A", "B": (3, H, W) in [-1, 1], "path": str} cut from side-by-side AB images.

    direction "AtoB": A = left half, B = right half; "BtoA": swapped. Files in the split folder
    that are not images (and subfolders) are skipped and listed in `unmatched`.
    """

    def __init__(
        self,
        root: Path | str,
        split: str = "train",
        direction: str = "AtoB",
        *,
        image_size: int = 256,
        load_size: int | None = None,
        augment: bool | None = None,
        fit: Fit = "resize",
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.root, self.split, self.direction = Path(root), split, direction
        folder = split_dir(self.root, split)
        self.files, self.unmatched = list_images(folder)
        report_unmatched(f"AB images {folder}", self.unmatched, "entries that are not images")
        if not self.files:
            raise DatasetLayoutError(
                f"expected side-by-side AB images in {folder}; found no image files"
            )
        self.transform = make_transform(split, image_size, load_size, augment, fit)
        log.info("AB images %s: %d pairs (%s)", folder, len(self.files), direction)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path = self.files[i]
        left, right = split_ab(load_rgb(path))
        a, b = (left, right) if self.direction == "AtoB" else (right, left)
        A, B = self.transform(a, b)  # (3, H, W) each
        return {"A": A, "B": B, "path": str(path)}

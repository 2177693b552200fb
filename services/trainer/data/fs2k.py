"""FS2K (Fan et al. 2022): face photos, artists' sketches of them, and face attributes.

Layout (as published):

    root/anno_train.json, anno_val.json (or anno_test.json)
    root/photo/photo{1,2,3}/imageXXXX.jpg
    root/sketch/sketch{1,2,3}/sketchXXXX.jpg   (sketch2/*.jpg are PNG files, some with alpha)

Each JSON entry names its photo ("photo1/image0110") and carries the attributes in
`ATTRIBUTES`; the sketch is the photo's path with photo -> sketch and image -> sketch. Files are
looked up by stem, so the suffix does not matter. Sketch files without a photo, and entries
whose photo or sketch is missing, are skipped and listed in `unmatched`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from services.trainer.data.common import (
    DatasetLayoutError,
    ItemDataset,
    describe_folder,
    list_images,
    load_rgb,
    make_transform,
    report_unmatched,
)
from shared.images import Fit

log = logging.getLogger(__name__)

# name -> (number of classes, meaning of each label) as documented by FS2K's README
ATTRIBUTES: dict[str, tuple[int, tuple[str, ...]]] = {
    "hair": (2, ("with hair", "without hair")),
    "hair_color": (5, ("brown", "black", "red", "no hair", "golden")),
    "gender": (2, ("male", "female")),
    "earring": (2, ("with earring", "without earring")),
    "smile": (2, ("with smile", "without smile")),
    "frontal_face": (2, ("head turned within 30 degrees", "turned more than 30 degrees")),
    "style": (3, ("style 1", "style 2", "style 3")),
}
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(ATTRIBUTES)
NUM_CLASSES: tuple[int, ...] = tuple(n for n, _ in ATTRIBUTES.values())

DIRECTIONS = ("sketch2photo", "photo2sketch")


def _index(folder: Path) -> dict[str, Path]:
    """stem -> file for the images in each subfolder of `folder` ("photo1/image0001" -> path)."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        for f in list_images(sub)[0]:
            out[f"{sub.name}/{f.stem}"] = f
    return out


def _sketch_key(photo_key: str) -> str:
    """ "photo1/image0110" -> "sketch1/sketch0110"."""
    sub, stem = photo_key.split("/", 1)
    return f"{sub.replace('photo', 'sketch', 1)}/{stem.replace('image', 'sketch', 1)}"


class FS2KDataset(ItemDataset):
    """Paired FS2K items: {"A", "B": (3, H, W) in [-1, 1], "path", "name", "attrs": (7,) long}.

    direction "sketch2photo": A = sketch, B = photo; "photo2sketch": the reverse. "path" is
    the A file, "name" the entry's name ("photo1/image0110"); "attrs" follow
    `ATTRIBUTE_NAMES`. Images are resized to squares (load_size / image_size); training crops
    and flips A and B together; ``fit`` letterboxes instead of stretching.
    """

    def __init__(
        self,
        root: Path | str,
        split: str = "train",
        direction: str = "sketch2photo",
        *,
        image_size: int = 256,
        load_size: int | None = None,
        augment: bool | None = None,
        fit: Fit = "resize",
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.root, self.split, self.direction = Path(root), split, direction
        anno = self.root / f"anno_{split}.json"
        if not anno.is_file() and split == "val" and (self.root / "anno_test.json").is_file():
            anno = self.root / "anno_test.json"
        if not anno.is_file():
            found = ", ".join(describe_folder(self.root)) or "nothing"
            raise DatasetLayoutError(
                f"FS2K: expected {anno.name} with photo/ and sketch/ in {self.root}; found: {found}"
            )
        entries = json.loads(anno.read_text())
        if not isinstance(entries, list):
            raise DatasetLayoutError(f"FS2K: {anno} should hold a JSON list of entries")
        photos, sketches = _index(self.root / "photo"), _index(self.root / "sketch")

        self.items: list[tuple[str, Path, Path, tuple[int, ...]]] = []
        self.unmatched: list[str] = []
        for e in entries:
            key = str(e["image_name"])
            photo, sketch = photos.get(key), sketches.get(_sketch_key(key))
            if photo is None or sketch is None:
                self.unmatched.append(f"{key} (no {'photo' if photo is None else 'sketch'})")
                continue
            attrs = tuple(int(e[name]) for name in ATTRIBUTE_NAMES)
            for name, v in zip(ATTRIBUTE_NAMES, attrs, strict=True):
                if not 0 <= v < ATTRIBUTES[name][0]:
                    raise DatasetLayoutError(f"FS2K: {key} has {name}={v}, out of range")
            self.items.append((key, photo, sketch, attrs))
        sketch_keys = {_sketch_key(k) for k in photos}
        orphans = sorted(k for k in sketches if k not in sketch_keys)
        self.unmatched += [f"{k} (sketch without a photo)" for k in orphans]
        report_unmatched(f"FS2K {split}", self.unmatched, "unmatched files or entries")
        if not self.items:
            raise DatasetLayoutError(f"FS2K: no photo/sketch pairs found for {anno.name}")
        self.transform = make_transform(split, image_size, load_size, augment, fit)
        log.info("FS2K %s: %d pairs (%s)", split, len(self.items), direction)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        key, photo_path, sketch_path, attrs = self.items[i]
        a_path, b_path = (
            (sketch_path, photo_path)
            if self.direction == "sketch2photo"
            else (photo_path, sketch_path)
        )
        A, B = self.transform(load_rgb(a_path), load_rgb(b_path))  # (3, H, W) each
        attr_labels = torch.tensor(attrs, dtype=torch.long)  # (7,)
        return {"A": A, "B": B, "path": str(a_path), "name": key, "attrs": attr_labels}

    def attribute_labels(self) -> Tensor:
        """(N, 7) long: every item's attributes (no image loading), e.g. for class weights."""
        return torch.tensor([it[3] for it in self.items], dtype=torch.long)

"""Unpaired data for CycleGAN: an A image and an independently drawn B image per item.

B's index is drawn from np.random.default_rng([seed, epoch, i]): reproducible, the same in
every DataLoader worker, and different each epoch when the trainer calls `set_epoch` (as with
a DistributedSampler).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from services.trainer.data.common import (
    DatasetLayoutError,
    ItemDataset,
    list_images,
    load_rgb,
    make_transform,
    report_unmatched,
)
from shared.images import Fit

log = logging.getLogger(__name__)


class _EpochSeeded:
    seed: int
    epoch: int

    def set_epoch(self, epoch: int) -> None:
        """Draw a different B for each item this epoch (call before iterating)."""
        self.epoch = epoch

    def _draw(self, i: int, n: int) -> int:
        return int(np.random.default_rng([self.seed, self.epoch, i]).integers(n))


class UnpairedDataset(_EpochSeeded, ItemDataset):
    """Items {"A", "B": (3, H, W) in [-1, 1]} from two folders of images (e.g. trainA, trainB).

    Length is the larger folder's; A cycles through root_a in order, B is drawn at random
    (seeded). A and B get independent crops and flips when augmenting.
    """

    def __init__(
        self,
        root_a: Path | str,
        root_b: Path | str,
        *,
        split: str = "train",
        image_size: int = 256,
        load_size: int | None = None,
        augment: bool | None = None,
        seed: int = 0,
        fit: Fit = "resize",
    ) -> None:
        self.root_a, self.root_b = Path(root_a), Path(root_b)
        self.seed, self.epoch = seed, 0
        files: list[list[Path]] = []
        self.unmatched: list[str] = []
        for root in (self.root_a, self.root_b):
            if not root.is_dir():
                raise DatasetLayoutError(f"expected a folder of images at {root}; not found")
            images, junk = list_images(root)
            if not images:
                raise DatasetLayoutError(f"expected images in {root}; found none")
            files.append(images)
            self.unmatched += [f"{root.name}/{n}" for n in junk]
        self.files_a, self.files_b = files
        report_unmatched("unpaired folders", self.unmatched, "entries that are not images")
        self.transform = make_transform(split, image_size, load_size, augment, fit)
        log.info("unpaired: %d A, %d B images", len(self.files_a), len(self.files_b))

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def __getitem__(self, i: int) -> dict[str, Any]:
        a_path = self.files_a[i % len(self.files_a)]
        b_path = self.files_b[self._draw(i, len(self.files_b))]
        (A,) = self.transform(load_rgb(a_path))  # (3, H, W)
        (B,) = self.transform(load_rgb(b_path))  # (3, H, W), its own crop and flip
        return {"A": A, "B": B}


class UnpairedView(_EpochSeeded, ItemDataset):
    """A paired dataset used as unpaired: item i is A of pair i with B of a random pair.

    Lets CycleGAN train on any paired layout (FS2K, paired folders, AB images, synthetic).
    Loads two pairs per item; the pairing is broken, the data is the same.
    """

    def __init__(self, paired: ItemDataset, seed: int = 0) -> None:
        self.paired, self.seed, self.epoch = paired, seed, 0
        self.n = len(paired)
        self.unmatched = list(paired.unmatched)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = self._draw(i, self.n)
        return {"A": self.paired[i]["A"], "B": self.paired[j]["B"]}

"""Training datasets: streaming torch Datasets for every layout sketch2image trains on.

Every item is a dict of tensors in [-1, 1], (3, H, W) float32 RGB:

- paired (FS2K, paired folders, side-by-side AB, synthetic): {"A", "B", "path"}
  (+ "name" and "attrs" (7,) long for FS2K, see `ATTRIBUTES`)
- unpaired (CycleGAN): {"A", "B"} with B drawn independently (seeded, `set_epoch`)
- class folders: {"B", "label", "path"}

Images are opened lazily in `__getitem__`; files are recognised by content; files a loader
cannot use are logged and kept in `dataset.unmatched`. Start with `open_dataset(root, split)`.
"""

from __future__ import annotations

from services.trainer.data.aligned import AlignedABDataset
from services.trainer.data.common import DatasetLayoutError, ItemDataset, PairedTransform, load_rgb
from services.trainer.data.folders import ClassFolderDataset, PairedFoldersDataset
from services.trainer.data.fs2k import ATTRIBUTE_NAMES, ATTRIBUTES, NUM_CLASSES, FS2KDataset
from services.trainer.data.layout import (
    LAYOUTS,
    SyntheticPairedDataset,
    detect_layout,
    open_dataset,
)
from services.trainer.data.unpaired import UnpairedDataset, UnpairedView

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "LAYOUTS",
    "NUM_CLASSES",
    "AlignedABDataset",
    "ClassFolderDataset",
    "DatasetLayoutError",
    "FS2KDataset",
    "ItemDataset",
    "PairedFoldersDataset",
    "PairedTransform",
    "SyntheticPairedDataset",
    "UnpairedDataset",
    "UnpairedView",
    "detect_layout",
    "load_rgb",
    "open_dataset",
]

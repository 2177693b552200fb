"""Folder layouts: two paired folders matched by file name, and one folder per class.

Paired folders (the Person Face Sketches layout):

    root/train/photos/0001.jpg   root/train/sketches/0001.png   root/val/...

Class folders (e.g. CIFAR-10 cats and dogs):

    root/train/cat/*.jpg   root/train/dog/*.jpg   root/test/...
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.trainer.data.common import (
    DatasetLayoutError,
    ItemDataset,
    describe_folder,
    has_images,
    list_images,
    load_rgb,
    make_transform,
    report_unmatched,
    split_dir,
)
from shared.images import Fit

log = logging.getLogger(__name__)


class PairedFoldersDataset(ItemDataset):
    """Items {"A", "B": (3, H, W) in [-1, 1], "path": str (the A file)}.

    A comes from root/split/a_dir, B from root/split/b_dir, matched by file stem (the suffix
    may differ: 0001.png pairs with 0001.jpg). Files with no partner, files that are not
    images and subfolders are skipped and listed in `unmatched` ("sketches/0003.png").
    """

    def __init__(
        self,
        root: Path | str,
        split: str = "train",
        a_dir: str = "sketches",
        b_dir: str = "photos",
        *,
        image_size: int = 256,
        load_size: int | None = None,
        augment: bool | None = None,
        fit: Fit = "resize",
    ) -> None:
        self.root, self.split = Path(root), split
        base = split_dir(self.root, split)
        missing = [d for d in (a_dir, b_dir) if not (base / d).is_dir()]
        if missing:
            found = ", ".join(describe_folder(base)) or "nothing"
            raise DatasetLayoutError(
                f"expected {base.name}/{a_dir} and {base.name}/{b_dir} in {self.root}; "
                f"found in {base.name}/: {found}"
            )
        a_files, a_junk = list_images(base / a_dir)
        b_files, b_junk = list_images(base / b_dir)
        a_by_stem = {p.stem: p for p in a_files}
        b_by_stem = {p.stem: p for p in b_files}
        self.pairs = [(a_by_stem[s], b_by_stem[s]) for s in sorted(a_by_stem.keys() & b_by_stem)]
        self.unmatched = sorted(
            [f"{a_dir}/{p.name}" for s, p in a_by_stem.items() if s not in b_by_stem]
            + [f"{b_dir}/{p.name}" for s, p in b_by_stem.items() if s not in a_by_stem]
            + [f"{a_dir}/{n}" for n in a_junk]
            + [f"{b_dir}/{n}" for n in b_junk]
        )
        report_unmatched(f"paired folders {base}", self.unmatched, "unpaired or non-image entries")
        if not self.pairs:
            raise DatasetLayoutError(
                f"no file in {base / a_dir} has a same-named partner in {base / b_dir}"
            )
        self.transform = make_transform(split, image_size, load_size, augment, fit)
        log.info("paired folders %s: %d pairs (%s -> %s)", base, len(self.pairs), a_dir, b_dir)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        a_path, b_path = self.pairs[i]
        A, B = self.transform(load_rgb(a_path), load_rgb(b_path))  # (3, H, W) each
        return {"A": A, "B": B, "path": str(a_path)}


def class_folders(folder: Path) -> list[str]:
    """Names of the subfolders of `folder` that hold at least one image file, sorted."""
    if not folder.is_dir():
        return []
    return sorted(
        d.name
        for d in folder.iterdir()
        if d.is_dir() and not d.name.startswith(".") and has_images(d)
    )


class ClassFolderDataset(ItemDataset):
    """Items {"B": (3, H, W) in [-1, 1], "label": int, "path": str} from root/split/<class>/.

    classes: the class folders to use, in label order; default every subfolder with images,
    sorted by name. Training applies a random horizontal flip (load_size = image_size by
    default, so no crop); evaluation only resizes.
    """

    def __init__(
        self,
        root: Path | str,
        split: str = "train",
        classes: Sequence[str] | None = None,
        *,
        image_size: int = 32,
        load_size: int | None = None,
        augment: bool | None = None,
    ) -> None:
        self.root, self.split = Path(root), split
        base = split_dir(self.root, split)
        self.classes = list(classes) if classes is not None else class_folders(base)
        if not self.classes:
            found = ", ".join(describe_folder(base)) or "nothing"
            raise DatasetLayoutError(
                f"expected class folders with images ({base.name}/<class>/*.jpg) in {self.root}; "
                f"found in {base.name}/: {found}"
            )
        missing = [c for c in self.classes if not (base / c).is_dir()]
        if missing:
            raise DatasetLayoutError(f"class folders {missing} not found in {base}")
        self.samples: list[tuple[Path, int]] = []
        self.unmatched: list[str] = []
        for label, c in enumerate(self.classes):
            files, junk = list_images(base / c)
            self.samples += [(p, label) for p in files]
            self.unmatched += [f"{c}/{n}" for n in junk]
        report_unmatched(f"class folders {base}", self.unmatched, "entries that are not images")
        self.transform = make_transform(split, image_size, load_size or image_size, augment)
        log.info("class folders %s: %d images in %s", base, len(self.samples), self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, label = self.samples[i]
        (B,) = self.transform(load_rgb(path))  # (3, H, W)
        return {"B": B, "label": label, "path": str(path)}

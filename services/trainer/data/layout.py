"""Recognise a dataset folder's layout and open the right loader for it.

Layouts (`detect_layout` checks them in this order):

    "fs2k"            root/anno_<split>.json + root/photo/ + root/sketch/
    "paired-folders"  root/<split>/photos/ + root/<split>/sketches/ (matched by file name)
    "unpaired"        root/trainA/ + root/trainB/ (CycleGAN's layout; testA/testB for eval)
    "aligned"         root/<split>/*.jpg, each A | B side by side (width = 2 x height)
    "class-folders"   root/<split>/<class>/*.jpg
    "synthetic"       the string "synthetic://N[?val=M&seed=S]": generated pairs (see below)

`open_dataset(..., layout="unpaired")` also works on every paired layout: it breaks the pairs
(`UnpairedView`) so CycleGAN can train on FS2K or paired folders.

Synthetic: "synthetic://N" gives N training pairs and M = max(1, N // 10) validation pairs
(`?val=M` to choose, `?seed=S` for another set) from `services.trainer.data.synthetic`,
generated on the fly at image_size, deterministic per (seed, split, index). A = sketch,
B = photo for "sketch2photo" (the default); swapped for "photo2sketch".
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from services.trainer.config import LAYOUTS
from services.trainer.data.aligned import AlignedABDataset
from services.trainer.data.common import (
    DatasetLayoutError,
    ItemDataset,
    describe_folder,
    list_images,
    make_transform,
)
from services.trainer.data.folders import ClassFolderDataset, PairedFoldersDataset, class_folders
from services.trainer.data.fs2k import FS2KDataset
from services.trainer.data.synthetic import make_pair, pair_rng
from services.trainer.data.unpaired import UnpairedDataset, UnpairedView

log = logging.getLogger(__name__)

SYNTHETIC_SCHEME = "synthetic://"
_SPLITS = ("train", "val", "test")
EXPECTED = (
    "expected anno_train.json with photo/ and sketch/ (FS2K), or train/photos and "
    "train/sketches, or trainA/ and trainB/ (unpaired), or train/*.jpg side-by-side AB images "
    "(width = 2 x height), or train/<class>/ folders of images, or synthetic://N"
)


class SyntheticPairedDataset(ItemDataset):
    """Pairs from `services.trainer.data.synthetic` as paired items {"A", "B", "path": "synthetic://..."}."""

    def __init__(
        self,
        n: int,
        split: str = "train",
        direction: str = "sketch2photo",
        *,
        image_size: int = 128,
        seed: int = 0,
        load_size: int | None = None,
        augment: bool | None = None,
    ) -> None:
        if direction not in ("sketch2photo", "photo2sketch"):
            raise ValueError(f"direction must be sketch2photo or photo2sketch, got {direction!r}")
        self.n, self.split, self.direction, self.seed = n, split, direction, seed
        self.size = image_size
        # generated at the output size: no augmentation unless asked for
        self.transform = make_transform(split, image_size, load_size, bool(augment))
        self.unmatched: list[str] = []
        pair_rng(seed, 0, split)  # validates split

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} pairs")
        sketch, photo = make_pair(pair_rng(self.seed, i, self.split), self.size)
        a, b = (sketch, photo) if self.direction == "sketch2photo" else (photo, sketch)
        A, B = self.transform(a, b)  # (3, H, W) each
        return {"A": A, "B": B, "path": f"{SYNTHETIC_SCHEME}{self.seed}/{self.split}/{i}"}


def parse_synthetic(url: str, split: str) -> tuple[int, int]:
    """ "synthetic://N?val=M&seed=S" -> (number of items in `split`, seed)."""
    parts = urlsplit(url)
    try:
        n_train = int(parts.netloc or parts.path.strip("/"))
        query = {k: int(v[-1]) for k, v in parse_qs(parts.query).items()}
    except ValueError:
        raise DatasetLayoutError(
            f"bad synthetic dataset {url!r}; expected synthetic://N[?val=M&seed=S]"
        ) from None
    unknown = set(query) - {"val", "seed"}
    if n_train < 1 or unknown:
        raise DatasetLayoutError(f"bad synthetic dataset {url!r}; expected synthetic://N, N >= 1")
    n = n_train if split == "train" else query.get("val", max(1, n_train // 10))
    return n, query.get("seed", 0)


def _ab_shaped(path: Path) -> bool:
    with Image.open(path) as im:
        w, h = im.size
    return 1.8 <= w / max(h, 1) <= 2.2


def detect_layout(root: Path | str) -> str:
    """The layout name of a dataset folder (one of `LAYOUTS`); DatasetLayoutError if none."""
    if str(root).startswith(SYNTHETIC_SCHEME):
        return "synthetic"
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder {root} does not exist or is not a folder")
    if any(root.glob("anno_*.json")):
        if (root / "photo").is_dir() and (root / "sketch").is_dir():
            return "fs2k"
        raise DatasetLayoutError(
            f"{root} has anno_*.json like FS2K but not photo/ and sketch/ beside it; "
            f"found: {', '.join(describe_folder(root))}"
        )
    splits = [root / s for s in _SPLITS if (root / s).is_dir()]
    if any((d / "photos").is_dir() and (d / "sketches").is_dir() for d in splits):
        return "paired-folders"
    if (root / "trainA").is_dir() and (root / "trainB").is_dir():
        return "unpaired"
    for d in splits:
        images = list_images(d)[0]
        if images:
            if _ab_shaped(images[0]):
                return "aligned"
            with Image.open(images[0]) as im:
                size = f"{im.width}x{im.height}"
            if not class_folders(d):
                raise DatasetLayoutError(
                    f"{d.name}/ holds images like {images[0].name} of {size}, not side-by-side "
                    f"AB images (width = 2 x height); {EXPECTED}"
                )
        if class_folders(d):
            return "class-folders"
    found = ", ".join(describe_folder(root)) or "nothing"
    if splits:
        found += "; in " + ", ".join(
            f"{d.name}/: {', '.join(describe_folder(d, 5)) or 'nothing'}" for d in splits
        )
    raise DatasetLayoutError(f"unrecognised dataset layout in {root}: {EXPECTED}; found: {found}")


def open_dataset(
    root: Path | str,
    split: str = "train",
    *,
    layout: str = "auto",
    direction: str | None = None,
    image_size: int | None = None,
    **kw: Any,
) -> ItemDataset:
    """Open `root` (a folder or "synthetic://N") with the loader for its layout.

    direction: "sketch2photo" (default) or "photo2sketch" for fs2k, paired-folders and
    synthetic; "AtoB" (default) or "BtoA" for aligned and unpaired, where "sketch2photo" means
    AtoB (left half / A folder is the drawing) and "photo2sketch" BtoA. For class-folders it is
    ignored. image_size: the output side; default the loader's (256; 128 for synthetic, 32
    for class folders). Other keywords (load_size, augment, seed, classes, a_dir, b_dir) go
    to the loader.
    Every dataset has `unmatched: list[str]`, the files it skipped.
    """
    found = detect_layout(root) if layout in ("auto", "unpaired") else layout
    if found not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected auto or one of {LAYOUTS}")
    if layout == "unpaired" and found != "unpaired":  # break the pairs of a paired layout
        if found == "class-folders":
            raise DatasetLayoutError(f"{root} holds class folders, which have no A/B domains")
        seed = int(kw.pop("seed", 0))
        paired = open_dataset(
            root, split, layout=found, direction=direction, image_size=image_size, **kw
        )
        return UnpairedView(paired, seed=seed)

    sized: dict[str, Any] = {} if image_size is None else {"image_size": image_size}
    ab = {"sketch2photo": "AtoB", "photo2sketch": "BtoA"}.get(direction or "", direction) or "AtoB"
    if found == "synthetic":
        n, seed = parse_synthetic(str(root), split)
        kw.setdefault("seed", seed)
        return SyntheticPairedDataset(n, split, direction or "sketch2photo", **sized, **kw)
    root = Path(root)
    if found == "fs2k":
        return FS2KDataset(root, split, direction or "sketch2photo", **sized, **kw)
    if found == "paired-folders":
        if direction not in (None, "sketch2photo", "photo2sketch"):
            raise ValueError(
                f"direction for paired folders: sketch2photo or photo2sketch, not {direction!r}"
            )
        dirs = ("sketches", "photos") if direction != "photo2sketch" else ("photos", "sketches")
        kw.setdefault("a_dir", dirs[0])
        kw.setdefault("b_dir", dirs[1])
        return PairedFoldersDataset(root, split, **sized, **kw)
    if found == "aligned":
        return AlignedABDataset(root, split, str(ab), **sized, **kw)
    if found == "unpaired":
        names = [split, *{"val": ["test"], "test": ["val"]}.get(split, [])]
        name = next((n for n in names if (root / f"{n}A").is_dir()), None)
        if name is None:
            found_in = ", ".join(describe_folder(root))
            raise DatasetLayoutError(
                f"expected {split}A/ and {split}B/ in {root}; found: {found_in}"
            )
        a, b = root / f"{name}A", root / f"{name}B"
        a, b = (a, b) if ab == "AtoB" else (b, a)
        return UnpairedDataset(a, b, split=split, **sized, **kw)
    return ClassFolderDataset(root, split, **sized, **kw)

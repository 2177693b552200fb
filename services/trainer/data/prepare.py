"""``python -m services.trainer prepare``: a downloaded public dataset -> the trainer's layout.

    python -m services.trainer prepare KIND SRC DST [--limit N] [--classes cat,dog] [--link]

KIND (sources are the published downloads; nothing here is ever unpickled):

- ``fs2k``: SRC is the extracted FS2K release (upstream repository DengPingFan/FS2K): photo/,
  sketch/, anno_train.json, anno_test.json, possibly one folder down (SRC/FS2K/...). Checked
  by opening `FS2KDataset` on both splits, then photo/, sketch/ and anno_*.json go to DST
  (the trainer's val split falls back to anno_test.json).
- ``pix2pix``: SRC is an extracted pix2pix dataset (facades, edges2shoes, maps, ... as fetched
  by the pix2pix project's dataset download script): train/ val/ test/ of side-by-side AB
  images, each twice as wide as tall. ``--limit N`` keeps the first N per split by name.
- ``cifar10``: SRC is the CIFAR-10 binary version from the CIFAR-10 page (Krizhevsky):
  cifar-10-binary.tar.gz, read member by member without extracting, or its folder
  cifar-10-batches-bin/. Records (1 label byte, then 1024 R, 1024 G, 1024 B bytes of a 32x32
  image, row-major) are read with numpy and written as DST/{train,test}/<class>/<index>.png
  for ``--classes`` (default cat,dog; names from batches.meta.txt); ``--limit N`` per class
  and split. The python version of CIFAR-10 is pickled and is refused.

``--link`` hard-links files (a symlink across file systems) instead of copying (fs2k,
pix2pix). DST must be new or empty. Prints a one-line summary; bad input exits 2 with one line.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from services.trainer.data.common import list_images
from services.trainer.data.fs2k import ATTRIBUTE_NAMES, FS2KDataset
from services.trainer.errors import DatasetLayoutError

log = logging.getLogger(__name__)

EXPECTED = {
    "fs2k": "the extracted FS2K release (photo/, sketch/, anno_train.json, anno_test.json)",
    "pix2pix": "an extracted pix2pix dataset (train/, val/, test/ of side-by-side AB images)",
    "cifar10": "the CIFAR-10 binary version (cifar-10-binary.tar.gz or its folder "
    "cifar-10-batches-bin/: data_batch_1.bin ... data_batch_5.bin, test_batch.bin, "
    "batches.meta.txt)",
}
SPLITS = ("train", "val", "test")
RECORD = 1 + 3 * 32 * 32  # label byte + R, G, B planes
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH, META = "test_batch.bin", "batches.meta.txt"
MAX_MEMBER = 64 << 20  # a real batch is 30.7 MB
PICKLED = (
    "SRC is the python (pickle) version of CIFAR-10, which is never unpickled here: expected "
    + EXPECTED["cifar10"]
)


def _find_root(src: Path, test: Callable[[Path], bool]) -> Path | None:
    """`src` itself, or the first folder directly inside it (SRC/FS2K/...), that passes test."""
    if src.is_dir() and test(src):
        return src
    subs = sorted(d for d in src.iterdir() if d.is_dir()) if src.is_dir() else []
    return next((d for d in subs if test(d)), None)


def _place(src: Path | str, dst: Path | str, link: bool) -> None:
    """Copy `src` to `dst`, or hard-link it (a symlink where a hard link is impossible)."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not link:
        shutil.copy2(src, dst)
        return
    try:
        os.link(src, dst)
    except OSError:  # another file system, or hard links not allowed
        dst.symlink_to(src.resolve())


def prepare_fs2k(src: Path, dst: Path, link: bool = False) -> str:
    root = _find_root(src, lambda d: (d / "anno_train.json").is_file())
    if root is None:
        raise DatasetLayoutError(f"SRC has no anno_train.json: expected {EXPECTED['fs2k']}")
    missing = [f"{n}/" for n in ("photo", "sketch") if not (root / n).is_dir()]
    eval_split = next((s for s in ("test", "val") if (root / f"anno_{s}.json").is_file()), None)
    if missing or eval_split is None:
        what = " and ".join(missing) or "anno_test.json"
        raise DatasetLayoutError(f"{root} has no {what}: expected {EXPECTED['fs2k']}")
    try:
        train, held_out = (FS2KDataset(root, s) for s in ("train", eval_split))
    except DatasetLayoutError:
        raise
    except (KeyError, TypeError, ValueError) as exc:  # entries without the published fields
        raise DatasetLayoutError(
            f"FS2K annotations in {root} are not as published ({type(exc).__name__}: {exc}): "
            f"expected a JSON list of entries with image_name, {', '.join(ATTRIBUTE_NAMES)}"
        ) from exc
    for name in ("photo", "sketch"):
        shutil.copytree(root / name, dst / name, copy_function=partial(_place, link=link))
    for anno in sorted(root.glob("anno_*.json")):
        _place(anno, dst / anno.name, link)
    unmatched = set(train.unmatched) | set(held_out.unmatched)
    return (
        f"fs2k: {len(train)} train + {len(held_out)} {eval_split} pairs, "
        f"{len(unmatched)} unmatched files or entries -> {dst} ({'linked' if link else 'copied'})"
    )


def prepare_pix2pix(src: Path, dst: Path, limit: int | None = None, link: bool = False) -> str:
    root = _find_root(src, lambda d: any((d / s).is_dir() for s in SPLITS))
    if root is None:
        raise DatasetLayoutError(
            f"SRC has no train/, val/ or test/ folder: expected {EXPECTED['pix2pix']}"
        )
    plan: list[tuple[Path, Path]] = []
    counts: list[str] = []
    skipped = 0
    for split in (s for s in SPLITS if (root / s).is_dir()):
        images, junk = list_images(root / split)
        skipped += len(junk)
        for path in images[:limit]:  # validate everything before writing anything
            with Image.open(path) as im:
                w, h = im.size
            if w != 2 * h:
                raise DatasetLayoutError(
                    f"{split}/{path.name} is {w}x{h}, not twice as wide as tall: "
                    f"expected {EXPECTED['pix2pix']}"
                )
            plan.append((path, dst / split / path.name))
        counts.append(f"{split} {len(images[:limit])}")
    if not plan:
        raise DatasetLayoutError(f"no images in {root}: expected {EXPECTED['pix2pix']}")
    for a, b in plan:
        _place(a, b, link)
    return (
        f"pix2pix: {', '.join(counts)} AB images ({skipped} non-image entries skipped) "
        f"-> {dst} ({'linked' if link else 'copied'})"
    )


def _read_cifar(src: Path) -> dict[str, bytes]:
    """The batch and meta files of the binary version, by name; refuses the pickled one."""
    wanted = {*TRAIN_BATCHES, TEST_BATCH, META}
    found: dict[str, bytes] = {}
    if src.is_file():
        if not tarfile.is_tarfile(src):
            raise DatasetLayoutError(
                f"SRC {src} is not a tar archive: expected {EXPECTED['cifar10']}"
            )
        with tarfile.open(src, "r:*") as tar:
            for m in tar:  # read in place: nothing is extracted to disk
                name = PurePosixPath(m.name).name
                if name == "data_batch_1":
                    raise DatasetLayoutError(PICKLED)
                if not (m.isreg() and name in wanted and name not in found):
                    continue  # links, folders, other files
                if m.size > MAX_MEMBER:
                    raise DatasetLayoutError(f"{m.name} is {m.size} bytes, too big for CIFAR-10")
                f = tar.extractfile(m)
                if f is not None:
                    found[name] = f.read()
        return found
    root = _find_root(src, lambda d: any((d / n).is_file() for n in (*TRAIN_BATCHES, TEST_BATCH)))
    if root is None:
        if _find_root(src, lambda d: (d / "data_batch_1").is_file()) is not None:
            raise DatasetLayoutError(PICKLED)
        raise DatasetLayoutError(f"SRC has no data_batch_1.bin: expected {EXPECTED['cifar10']}")
    for name in sorted(wanted):
        path = root / name
        if path.is_file():
            if path.stat().st_size > MAX_MEMBER:
                raise DatasetLayoutError(f"{path} is too big for a CIFAR-10 batch")
            found[name] = path.read_bytes()
    return found


def _records(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,) uint8, images (N, 32, 32, 3) uint8 RGB) of a binary batch."""
    if not data or len(data) % RECORD:
        raise DatasetLayoutError(
            f"{name} has {len(data)} bytes, not a multiple of {RECORD}: expected CIFAR-10 "
            "binary records (1 label byte + 3072 pixel bytes)"
        )
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    return rows[:, 0], rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def prepare_cifar10(
    src: Path, dst: Path, classes: Sequence[str] = ("cat", "dog"), limit: int | None = None
) -> str:
    files = _read_cifar(src)
    batches = {
        s: [n for n in ns if n in files]
        for s, ns in (("train", TRAIN_BATCHES), ("test", [TEST_BATCH]))
    }
    if not batches["train"] or META not in files:
        what = META if batches["train"] else "data_batch_1.bin"
        raise DatasetLayoutError(f"SRC has no {what}: expected {EXPECTED['cifar10']}")
    names = [n.strip() for n in files[META].decode("utf-8", "replace").splitlines() if n.strip()]
    if not classes or any(c not in names for c in classes):
        raise DatasetLayoutError(
            f"--classes {','.join(classes)}: expected names from {META}: {', '.join(names)}"
        )
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if n not in files]
    if missing:
        log.warning("CIFAR-10 %s lacks %s; writing what is there", src, ", ".join(missing))
    parsed = {s: [(n, *_records(files[n], n)) for n in ns] for s, ns in batches.items()}
    for name, labels, _ in (b for bs in parsed.values() for b in bs):
        if int(labels.max()) >= len(names):
            raise DatasetLayoutError(
                f"{name} has label {labels.max()}, but only {len(names)} names"
            )
    counts: list[str] = []
    for split, split_batches in parsed.items():
        done = dict.fromkeys(classes, 0)
        offset = 0
        for _, labels, images in split_batches:
            for c in classes:
                room = None if limit is None else limit - done[c]
                picked = np.flatnonzero(labels == names.index(c))[:room]
                (dst / split / c).mkdir(parents=True, exist_ok=True)
                for i in picked:
                    Image.fromarray(images[i], "RGB").save(
                        dst / split / c / f"{offset + i:05d}.png"
                    )
                done[c] += len(picked)
            offset += len(labels)
        if split_batches:
            counts.append(f"{split} " + ", ".join(f"{c} {n}" for c, n in done.items()))
    return f"cifar10: {'; '.join(counts)} -> {dst}"

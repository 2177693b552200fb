"""``python -m benchmarks.drawing_detector [DATA_DIR]``: how well ``looks_like_drawing``
tells drawings from photos on the real data sets (see shared/data/README.md).

DATA_DIR defaults to ``../shared/data`` next to the repository. Groups: FS2K photos and
sketches (official train split and the validation subset), the FS2K validation photos in
grey, edges2shoes edge maps and shoe photos (left and right halves), CMP facade photos
(left halves) and CIFAR-10 cats and dogs (test). Facade label maps (right halves) are
neither drawings nor photos; the share called "drawing" is printed for information.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from shared.images import decode, looks_like_drawing

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _load(path: Path, part: str) -> Image.Image:
    """part: "whole", "grey", "left" or "right" (halves of the side-by-side pairs)."""
    img = decode(path.read_bytes(), max_bytes=1 << 26, max_pixels=1 << 26)
    w, h = img.size
    if part == "grey":
        return img.convert("L").convert("RGB")
    if part in ("left", "right"):
        return img.crop((0, 0, w // 2, h) if part == "left" else (w // 2, 0, w, h))
    return img


def _sketch_of(photo: Path) -> Path:
    """fs2k/photo/photoN/imageXXXX.jpg -> fs2k/sketch/sketchN/sketchXXXX.jpg"""
    style = photo.parent.name.replace("photo", "sketch")
    return photo.parents[2] / "sketch" / style / photo.name.replace("image", "sketch")


# (group, True: drawing / False: photo / None: neither, image files, part)
Group = tuple[str, bool | None, list[Path], str]


def _groups(data: Path) -> Iterator[Group]:
    fs2k = data / "fs2k"
    if fs2k.is_dir():
        val = {e["image_name"] for e in json.loads((fs2k / "anno_val.json").read_text())}
        photos = sorted(fs2k.glob("photo/photo*/*.jpg"))
        for split in ("train", "val"):
            ps = [p for p in photos if (split == "val") == (f"{p.parent.name}/{p.stem}" in val)]
            sketches = [_sketch_of(p) for p in ps]
            yield f"fs2k {split} photos", False, ps, "whole"
            yield f"fs2k {split} sketches", True, [p for p in sketches if p.exists()], "whole"
            if split == "val":
                yield "fs2k val photos, grey", False, ps, "grey"
    shoes = sorted((data / "edges2shoes_100").glob("*/*.jpg"))
    yield "edges2shoes edges", True, shoes, "left"
    yield "edges2shoes photos", False, shoes, "right"
    facades = sorted((data / "facades").glob("*/*.jpg"))
    yield "facade photos", False, facades, "left"
    yield "facade label maps", None, facades, "right"
    yield "cifar10 cats+dogs test", False, sorted(data.glob("cifar10_catdog/test/*/*.jpg")), "whole"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Accuracy of looks_like_drawing on real data")
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"no data set folder at {args.data}")
        return 1
    print(f"{'group':28s} {'n':>5s} {'accuracy':>9s} {'ms/img':>7s}")
    for name, is_drawing, paths, part in _groups(args.data):
        if not paths:
            continue
        hits, seconds = 0, 0.0
        for path in paths:
            img = _load(path, part)
            t0 = time.perf_counter()
            verdict, _ = looks_like_drawing(img)
            seconds += time.perf_counter() - t0
            hits += verdict if is_drawing is None else verdict == is_drawing
        note = "  (share called drawing)" if is_drawing is None else ""
        ms = 1000 * seconds / len(paths)
        print(f"{name:28s} {len(paths):5d} {hits / len(paths):9.4f} {ms:7.2f}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

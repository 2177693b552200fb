"""A tiny FS2K-layout folder for tests that need FS2K's labels (anno_<split>.json) on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_fs2k(root: Path, split: str, n: int, seed: int) -> None:
    """A tiny FS2K-layout folder: photos coloured by gender, sketches, anno_<split>.json."""
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(n):
        key = f"image{seed * 100 + i:04d}"
        gender = i % 2
        photo = rng.integers(0, 60, (24, 24, 3), dtype=np.uint8) + (
            np.array([180, 40, 40]) if gender else np.array([40, 40, 180])
        ).astype(np.uint8)
        for sub, name, arr in (
            ("photo/photo1", key, photo),
            ("sketch/sketch1", key.replace("image", "sketch"), 255 - photo),
        ):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / sub / f"{name}.jpg")
        attrs = dict(
            hair=0,
            hair_color=1,
            gender=gender,
            earring=1,
            smile=i % 3 == 0,
            frontal_face=0,
            style=0,
        )
        entries.append({"image_name": f"photo1/{key}", **{k: int(v) for k, v in attrs.items()}})
    (root / f"anno_{split}.json").write_text(json.dumps(entries))

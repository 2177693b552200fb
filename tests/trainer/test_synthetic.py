from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from services.trainer.data.synthetic import (
    SyntheticPairs,
    make_pair,
    pair_rng,
    write_paired_folders,
)


def _folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_write_paired_folders_layout_and_determinism(tmp_path: Path) -> None:
    write_paired_folders(tmp_path / "a", n_train=4, n_val=2, size=64, seed=7)
    write_paired_folders(tmp_path / "b", n_train=4, n_val=2, size=64, seed=7)
    write_paired_folders(tmp_path / "c", n_train=4, n_val=2, size=64, seed=8)
    a, b, c = (_folder_bytes(tmp_path / x) for x in "abc")

    assert sorted(a) == sorted(
        [f"train/{d}/{i:05d}.png" for d in ("photos", "sketches") for i in range(4)]
        + [f"val/{d}/{i:05d}.png" for d in ("photos", "sketches") for i in range(2)]
    )
    assert a == b  # same seed: identical bytes
    assert all(a[k] != c[k] for k in a)  # another seed: every image differs
    # train and val are different streams
    assert a["train/photos/00000.png"] != a["val/photos/00000.png"]
    with Image.open(tmp_path / "a" / "train" / "photos" / "00000.png") as im:
        assert (im.mode, im.size) == ("RGB", (64, 64))


def test_sketch_is_black_lines_on_white_tracing_the_photo_edges() -> None:
    for i in range(10):
        sketch, photo = make_pair(pair_rng(0, i), 128)
        assert sketch.mode == photo.mode == "RGB"
        assert sketch.size == photo.size == (128, 128)
        s = np.asarray(sketch).astype(np.float32)
        assert np.array_equal(s[..., 0], s[..., 1])  # grey levels only
        ink = s[..., 0] < 128  # (H, W)
        assert 0.005 < ink.mean() < 0.2  # thin lines on a mostly white page
        assert (s[..., 0] > 250).mean() > 0.75

        # the lines sit where the photo has edges (shape outlines), not elsewhere
        p = np.asarray(photo).astype(np.float32).mean(-1)
        grad = np.hypot(*np.gradient(p))
        near_ink = np.zeros_like(ink)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                near_ink |= np.roll(ink, (dy, dx), (0, 1))
        assert grad[near_ink].mean() > 3 * grad[~near_ink].mean()


def test_colour_follows_shape_kind() -> None:
    # circles red-ish, rectangles blue-ish, triangles green-ish, ellipses amber: the dominant
    # channel of the most saturated pixels is always one of those hues, never grey
    seen = set()
    for i in range(30):
        _, photo = make_pair(pair_rng(3, i), 64)
        p = np.asarray(photo).astype(np.int32).reshape(-1, 3)
        sat = p.max(1) - p.min(1)
        vivid = p[sat > 90]
        assert len(vivid) > 20, "every scene has at least one coloured shape"
        seen |= set(np.argmax(vivid, 1).tolist())
    assert seen == {0, 1, 2}  # red/amber (R), green (G), blue (B) all occur


def test_dataset_matches_folders_and_is_index_deterministic(tmp_path: Path) -> None:
    write_paired_folders(tmp_path, n_train=3, n_val=1, size=32, seed=5)
    ds = SyntheticPairs(3, size=32, seed=5)
    assert len(ds) == 3
    item = ds[2]
    assert set(item) == {"A", "B"}
    for key, folder in (("A", "sketches"), ("B", "photos")):
        x = item[key]
        assert x.shape == (3, 32, 32)
        assert x.dtype == torch.float32
        assert float(x.min()) >= -1.0
        assert float(x.max()) <= 1.0
        disk = np.asarray(Image.open(tmp_path / "train" / folder / "00002.png"), np.float32)
        torch.testing.assert_close(x, torch.from_numpy(disk / 127.5 - 1).permute(2, 0, 1))
    again = SyntheticPairs(3, size=32, seed=5)[2]
    assert torch.equal(item["B"], again["B"])
    assert not torch.equal(item["B"], SyntheticPairs(3, size=32, seed=6)[2]["B"])
    assert not torch.equal(ds[0]["B"], ds[1]["B"])
    val = SyntheticPairs(1, size=32, seed=5, split="val")[0]
    assert not torch.equal(val["B"], ds[0]["B"])
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(ValueError, match="split"):
        SyntheticPairs(1, split="bogus")


def test_fast_enough() -> None:
    t0 = time.perf_counter()
    for i in range(200):
        make_pair(pair_rng(0, i), 128)
    # ~4 ms a pair on one core; 1000 pairs in a few seconds
    assert time.perf_counter() - t0 < 4.0

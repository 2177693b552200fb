"""Decode-once training data (services.trainer.data.cache) through ``open_run_data``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from services.trainer.config import TrainConfig
from services.trainer.data import PairedFoldersDataset
from services.trainer.data import cache as cache_module
from services.trainer.data.cache import CachedPairs, folder_fingerprint, to_uint8
from services.trainer.data.common import PairedTransform
from services.trainer.data.loading import RunData, open_run_data
from services.trainer.engine.distributed import DistContext

SIZE = 32
LOAD = 36  # round(32 * 286 / 256)


def noise(seed: int, w: int = 40, h: int = 30) -> np.ndarray:
    """(h, w, 3) uint8 noise in [30, 225] (never white)."""
    return np.random.default_rng(seed).integers(30, 226, (h, w, 3), dtype=np.uint8)


def write_dataset(root: Path, n_train: int = 4, n_val: int = 2) -> Path:
    """Paired folders of 40x30 noise PNGs whose photo is the sketch itself (B == A)."""
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            arr = noise(i + (100 if split == "val" else 0))
            for sub in ("sketches", "photos"):
                path = root / split / sub / f"{i:03d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(path)
    return root


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "faces")


def config_for(data: Path | str, **fields: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "recipe": "pix2pix",
        "data": str(data),
        "image_size": SIZE,
        "batch_size": 2,
        "num_workers": 2,
        "cache": True,
    }
    base.update(fields)
    return TrainConfig.model_validate(base)


def open_data(config: TrainConfig) -> RunData:
    return open_run_data(config, "paired", SIZE, 2, DistContext(torch.device("cpu")))


def cache_files(root: Path) -> list[Path]:
    return sorted(root.glob("*.safetensors"))


def item(data: RunData, i: int, epoch: int = 0) -> dict[str, Tensor]:
    data.train.set_epoch(epoch)
    return data.train[i]


def test_cached_eval_items_equal_the_decoded_ones(data_root: Path, cache_root: Path) -> None:
    cached = open_data(config_for(data_root))
    plain = open_data(config_for(data_root, cache=False))
    assert isinstance(cached.heldout, CachedPairs)
    assert not isinstance(plain.heldout, CachedPairs)
    assert len(cached.heldout) == len(plain.heldout) == 2  # type: ignore[arg-type]
    for i in range(2):
        got, want = cached.heldout[i], plain.heldout[i]
        assert got["A"].shape == (3, SIZE, SIZE)
        assert got["A"].dtype == torch.float32
        assert torch.equal(got["A"], want["A"])
        assert torch.equal(got["B"], want["B"])
    assert cached.num_workers == 0  # cached items are tensor slices: no workers
    assert plain.num_workers == 2
    # one file per split: train at the load size, val at the image size
    assert len(cache_files(cache_root)) == 2


def test_cached_training_items_equal_the_decoded_ones(data_root: Path, cache_root: Path) -> None:
    """Same seeds, same draws: the cache crops and flips like PairedTransform does."""
    cached = open_data(config_for(data_root))
    plain = open_data(config_for(data_root, cache=False))
    for epoch in (0, 1):
        for i in range(len(cached.train)):
            got, want = item(cached, i, epoch), item(plain, i, epoch)
            assert torch.equal(got["A"], want["A"])
            assert torch.equal(got["B"], want["B"])


def test_training_items_are_crops_and_flips_shared_by_a_and_b(
    data_root: Path, cache_root: Path
) -> None:
    data = open_data(config_for(data_root))
    full = PairedFoldersDataset(data_root, "train", image_size=LOAD, augment=False)
    flipped_somewhere, offsets = False, set()
    for epoch in range(4):
        for i in range(len(data.train)):
            got = item(data, i, epoch)
            assert got["A"].shape == (3, SIZE, SIZE)
            assert torch.equal(got["A"], got["B"])  # B == A on disk: crops/flips match
            whole = full[i]["A"]  # (3, 36, 36)
            matches = [
                (y, x, flip)
                for y in range(LOAD - SIZE + 1)
                for x in range(LOAD - SIZE + 1)
                for flip in (False, True)
                if torch.equal(
                    got["A"],
                    whole[:, y : y + SIZE, x : x + SIZE].flip(-1)
                    if flip
                    else whole[:, y : y + SIZE, x : x + SIZE],
                )
            ]
            assert matches, f"item {i} of epoch {epoch} is no crop of the load-size image"
            flipped_somewhere |= matches[0][2]
            offsets.add(matches[0][:2])
    assert flipped_somewhere
    assert len(offsets) > 1


def test_without_a_val_split_the_held_out_slice_is_cached_too(
    tmp_path: Path, cache_root: Path
) -> None:
    root = write_dataset(tmp_path / "trainonly", n_train=6, n_val=0)
    cached = open_data(config_for(root))
    plain = open_data(config_for(root, cache=False))
    assert len(cached.train) == len(plain.train) == 5
    assert len(cached.heldout) == len(plain.heldout) == 1  # type: ignore[arg-type]
    assert cached.heldout.indices == plain.heldout.indices  # type: ignore[attr-defined]
    assert torch.equal(cached.heldout[0]["A"], plain.heldout[0]["A"])
    assert torch.equal(item(cached, 3)["A"], item(plain, 3)["A"])


def test_a_second_open_reads_the_cache_file(
    data_root: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = open_data(config_for(data_root))
    files = cache_files(cache_root)
    stamps = [p.stat().st_mtime_ns for p in files]

    def no_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache was built again")

    monkeypatch.setattr(cache_module, "build_cache", no_rebuild)
    second = open_data(config_for(data_root))
    assert cache_files(cache_root) == files
    assert [p.stat().st_mtime_ns for p in files] == stamps
    assert torch.equal(first.heldout[1]["A"], second.heldout[1]["A"])
    assert torch.equal(item(first, 2)["A"], item(second, 2)["A"])


def test_a_changed_dataset_is_cached_anew(data_root: Path, cache_root: Path) -> None:
    before = folder_fingerprint(data_root)
    assert folder_fingerprint(data_root) == before  # stable
    open_data(config_for(data_root))
    assert len(cache_files(cache_root)) == 2

    touched = data_root / "val" / "photos" / "001.png"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    after_touch = folder_fingerprint(data_root)
    assert after_touch != before

    # new content for a val pair (both files, so B == A still)
    arr = noise(999)
    for sub in ("sketches", "photos"):
        Image.fromarray(arr).save(data_root / "val" / sub / "001.png")
    assert folder_fingerprint(data_root) not in (before, after_touch)
    data = open_data(config_for(data_root))
    assert len(cache_files(cache_root)) == 4  # both splits under the new key
    fresh = PairedFoldersDataset(data_root, "val", image_size=SIZE)[1]["A"]
    assert torch.equal(data.heldout[1]["A"], fresh)


def test_fit_and_size_are_part_of_the_key(data_root: Path, cache_root: Path) -> None:
    resized = open_data(config_for(data_root))
    boxed = open_data(config_for(data_root, fit="letterbox"))
    assert len(cache_files(cache_root)) == 4
    assert not torch.equal(resized.heldout[0]["A"], boxed.heldout[0]["A"])
    open_data(config_for(data_root, load_size=40))
    assert len(cache_files(cache_root)) == 5  # a new training cache; val is the same


def test_synthetic_data_is_never_cached(cache_root: Path) -> None:
    data = open_data(config_for("synthetic://6?val=2"))
    assert not isinstance(data.heldout, CachedPairs)
    assert not cache_root.exists() or not cache_files(cache_root)


@pytest.mark.parametrize("cache", [False, True])
def test_letterbox_pads_a_wide_image_with_white_bars(
    data_root: Path, cache_root: Path, cache: bool
) -> None:
    """40x30 into 32x32: scaled by 0.8 to 32x24, centred: rows 0-3 and 28-31 are white."""
    data = open_data(config_for(data_root, fit="letterbox", cache=cache))
    for i in range(2):
        A = data.heldout[i]["A"]
        assert A.shape == (3, SIZE, SIZE)
        assert (A[:, :4] == 1.0).all()
        assert (A[:, 28:] == 1.0).all()
        assert (A[:, 4:28] < 1.0).any(dim=0).float().mean() > 0.9  # the noise, not white
    train = item(data, 0)
    assert torch.equal(train["A"], train["B"])


def test_paired_transform_letterbox_pads_tall_images_at_the_sides() -> None:
    tall = Image.fromarray(noise(1, w=30, h=40))  # 30x40 -> 24x32, columns 4-27
    wide = Image.fromarray(noise(2, w=40, h=30))
    boxed = PairedTransform(image_size=SIZE, fit="letterbox")
    stretched = PairedTransform(image_size=SIZE)
    (t,) = boxed(tall)
    assert t.shape == (3, SIZE, SIZE)
    assert (t[:, :, :4] == 1.0).all()
    assert (t[:, :, 28:] == 1.0).all()
    assert (t[:, :, 4:28] < 1.0).any()
    (s,) = stretched(tall)
    assert not (s[:, :, :4] == 1.0).all()
    # training: letterbox to the load size, then one crop and flip for every image of the item
    torch.manual_seed(0)
    train = PairedTransform(image_size=SIZE, fit="letterbox", augment=True)
    a, b = train(wide, wide.copy())
    assert a.shape == (3, SIZE, SIZE)
    assert torch.equal(a, b)
    assert (a == 1.0).all(dim=0).all(dim=1).any()  # some white rows of the bars survive


def test_uint8_round_trip_is_exact_for_decoded_images() -> None:
    levels = torch.arange(256, dtype=torch.float32)
    x = levels / 127.5 - 1.0
    assert torch.equal(to_uint8(x), torch.arange(256, dtype=torch.int32).to(torch.uint8))
    assert torch.equal(
        to_uint8(torch.tensor([-1.5, 1.5])), torch.tensor([0, 255], dtype=torch.uint8)
    )

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from services.trainer.data import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    AlignedABDataset,
    ClassFolderDataset,
    DatasetLayoutError,
    FS2KDataset,
    PairedFoldersDataset,
    UnpairedDataset,
    UnpairedView,
    detect_layout,
    open_dataset,
)
from services.trainer.data.synthetic import SyntheticPairs

REAL_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
ATOL = 0.04  # bicubic resampling of X and 255 - X agree to a level or two


def noise(seed: int, w: int = 40, h: int = 40) -> np.ndarray:
    """(h, w, 3) uint8 noise in [30, 225]: any misaligned crop or flip shows."""
    return np.random.default_rng(seed).integers(30, 226, (h, w, 3), dtype=np.uint8)


def save(arr: np.ndarray, path: Path, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def as_tensor(arr: np.ndarray, size: int) -> torch.Tensor:
    im = Image.fromarray(arr).resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(im, np.float32) / 127.5 - 1).permute(2, 0, 1)


def check_item(item: dict, size: int) -> None:
    for key in ("A", "B"):
        x = item[key]
        assert x.shape == (3, size, size)
        assert x.dtype == torch.float32
        assert float(x.min()) >= -1.0
        assert float(x.max()) <= 1.0


def check_aligned_training(ds: torch.utils.data.Dataset, i: int = 0) -> None:
    """B was built as 255 - A: every random crop/flip must keep B == -A."""
    torch.manual_seed(0)
    seen = []
    for _ in range(8):
        item = ds[i]
        torch.testing.assert_close(item["B"], -item["A"], atol=ATOL, rtol=0)
        seen.append(item["A"])
    assert any(not torch.equal(seen[0], a) for a in seen[1:]), "training should augment"


@pytest.fixture
def paired_root(tmp_path: Path) -> Path:
    root = tmp_path / "faces"
    for i in range(3):
        x = noise(i)
        save(x, root / "train" / "sketches" / f"{i:03d}.png")
        # photo 000 is a PNG file with a .jpg name: opened by content
        save(255 - x, root / "train" / "photos" / f"{i:03d}.{'jpg' if i == 0 else 'png'}")
    # an RGBA sketch: black strokes on a transparent page, paired with a photo
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:12, :, 3] = 255
    save(rgba, root / "train" / "sketches" / "rgba.png")
    save(noise(9), root / "train" / "photos" / "rgba.jpg", fmt="JPEG")
    save(noise(5), root / "train" / "sketches" / "lonely.png")  # no photo
    (root / "train" / "photos" / "notes").mkdir()
    (root / "train" / "photos" / "notes" / "readme.txt").write_text("junk")
    (root / "train" / "photos" / "junk.txt").write_text("junk")
    save(noise(7), root / "val" / "sketches" / "a.png")
    save(255 - noise(7), root / "val" / "photos" / "a.png")
    return root


def test_paired_folders_match_by_stem_and_report_unmatched(paired_root: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        ds = PairedFoldersDataset(paired_root, "train", image_size=32)
    assert len(ds) == 4
    assert ds.unmatched == ["photos/junk.txt", "photos/notes/", "sketches/lonely.png"]
    assert "3 " in caplog.text
    assert "lonely.png" in caplog.text
    check_item(ds[0], 32)
    assert ds[0]["path"].endswith("000.png")
    check_aligned_training(ds, 0)  # includes the PNG-named-.jpg photo


def test_rgba_sketch_is_composited_on_white(paired_root: Path) -> None:
    ds = PairedFoldersDataset(paired_root, "train", image_size=40, augment=False)
    item = next(ds[i] for i in range(len(ds)) if ds[i]["path"].endswith("rgba.png"))
    A = item["A"]  # (3, 40, 40)
    assert torch.allclose(A[:, :8], torch.ones_like(A[:, :8]))  # transparent -> white
    assert float(A[:, 10:12].mean()) < -0.9  # the opaque black stroke


def test_eval_is_deterministic_resize_and_direction_swaps(paired_root: Path) -> None:
    ds = PairedFoldersDataset(paired_root, "val", image_size=24)
    a1, a2 = ds[0], ds[0]
    assert torch.equal(a1["A"], a2["A"])
    torch.testing.assert_close(a1["A"], as_tensor(noise(7), 24))
    rev = open_dataset(paired_root, "val", direction="photo2sketch", image_size=24)
    assert isinstance(rev, PairedFoldersDataset)
    assert torch.equal(rev[0]["A"], a1["B"])
    assert torch.equal(rev[0]["B"], a1["A"])


def test_side_by_side_ab(tmp_path: Path) -> None:
    for i in range(2):
        x = noise(i, 30, 30)
        # PNG bytes under a .jpg name, as in some mirrors; left = A, right = B
        save(np.concatenate([x, 255 - x], 1), tmp_path / "ab" / "train" / f"{i}.jpg")
    save(
        np.concatenate([noise(3, 30, 30), noise(4, 30, 30)], 1), tmp_path / "ab" / "test" / "0.png"
    )
    (tmp_path / "ab" / "train" / "README.txt").write_text("junk")
    (tmp_path / "ab" / "train" / "extra").mkdir()
    root = tmp_path / "ab"
    assert detect_layout(root) == "aligned"

    ds = AlignedABDataset(root, "train", image_size=16)
    assert len(ds) == 2
    assert ds.unmatched == ["README.txt", "extra/"]
    check_item(ds[1], 16)
    check_aligned_training(ds, 1)

    val = open_dataset(root, "val", image_size=16)  # no val/: falls back to test/
    assert isinstance(val, AlignedABDataset)
    assert len(val) == 1
    torch.testing.assert_close(val[0]["A"], as_tensor(noise(3, 30, 30), 16))
    rev = open_dataset(root, "val", direction="BtoA", image_size=16)
    torch.testing.assert_close(rev[0]["A"], as_tensor(noise(4, 30, 30), 16))


@pytest.fixture
def fs2k_root(tmp_path: Path) -> Path:
    root = tmp_path / "FS2K"
    entries = []
    for sub, n, attrs in (
        (1, 1, (0, 2, 0, 1, 1, 0, 0)),
        (2, 2, (1, 3, 1, 0, 0, 1, 2)),
        (1, 3, (0, 0, 0, 0, 0, 0, 0)),  # its sketch is missing
    ):
        x = noise(n, 30, 40)
        save(x, root / "photo" / f"photo{sub}" / f"image{n:04d}.jpg")
        if n == 2:  # as sketch2/*.jpg: PNG with alpha under a .jpg name
            rgba = np.concatenate([255 - x, np.full((40, 30, 1), 255, np.uint8)], -1)
            save(rgba, root / "sketch" / "sketch2" / "sketch0002.jpg")
        elif n == 1:
            save(255 - x, root / "sketch" / f"sketch{sub}" / f"sketch{n:04d}.jpg")
        entry = {"image_name": f"photo{sub}/image{n:04d}", "skin_color": [1, 2]}
        entries.append(entry | dict(zip(ATTRIBUTE_NAMES, attrs, strict=True)))
    save(noise(99), root / "sketch" / "sketch2" / "sketch0099.jpg")  # no photo
    (root / "anno_train.json").write_text(json.dumps(entries))
    (root / "anno_val.json").write_text(json.dumps(entries[:1]))
    return root


def test_fs2k_pairs_attributes_and_unmatched(fs2k_root: Path) -> None:
    assert detect_layout(fs2k_root) == "fs2k"
    ds = FS2KDataset(fs2k_root, "train", image_size=16)
    assert len(ds) == 2
    assert ds.unmatched == [
        "photo1/image0003 (no sketch)",
        "sketch2/sketch0099 (sketch without a photo)",
    ]
    item = ds[1]
    check_item(item, 16)
    assert item["name"] == "photo2/image0002"
    assert item["path"].endswith("sketch0002.jpg")
    assert item["attrs"].dtype == torch.long
    assert item["attrs"].tolist() == [1, 3, 1, 0, 0, 1, 2]
    assert ds.attribute_labels().shape == (2, 7)
    assert [n for n, _ in ATTRIBUTES.values()] == [2, 5, 2, 2, 2, 2, 3]
    check_aligned_training(ds, 1)

    s2p = FS2KDataset(fs2k_root, "val", image_size=16)
    p2s = open_dataset(fs2k_root, "val", direction="photo2sketch", image_size=16)
    assert isinstance(p2s, FS2KDataset)
    assert len(p2s) == 1
    torch.testing.assert_close(s2p[0]["B"], as_tensor(noise(1, 30, 40), 16))  # B = photo
    assert torch.equal(p2s[0]["A"], s2p[0]["B"])


def test_fs2k_rejects_out_of_range_attribute(fs2k_root: Path) -> None:
    entries = json.loads((fs2k_root / "anno_train.json").read_text())
    entries[0]["style"] = 3
    (fs2k_root / "anno_train.json").write_text(json.dumps(entries))
    with pytest.raises(DatasetLayoutError, match="style=3"):
        FS2KDataset(fs2k_root, "train")


def test_unpaired_draws_b_independently_and_reproducibly(tmp_path: Path) -> None:
    # every B file is one flat grey level, so the file a B came from can be read off its pixels
    for i in range(3):
        save(noise(i), tmp_path / "trainA" / f"{i}.png")
    levels = [0, 50, 100, 150, 200, 250]
    for i, v in enumerate(levels):
        save(np.full((20, 20, 3), v, np.uint8), tmp_path / "trainB" / f"{i}.png")
    assert detect_layout(tmp_path) == "unpaired"
    ds = open_dataset(tmp_path, "train", image_size=16, seed=1)
    assert isinstance(ds, UnpairedDataset)
    assert len(ds) == 6

    def drawn(d: UnpairedDataset) -> list[int]:
        return [levels.index(round((float(d[i]["B"].mean()) + 1) * 127.5)) for i in range(len(d))]

    first = drawn(ds)
    assert first == drawn(UnpairedDataset(tmp_path / "trainA", tmp_path / "trainB", seed=1))
    assert first != drawn(UnpairedDataset(tmp_path / "trainA", tmp_path / "trainB", seed=2))
    ds.set_epoch(1)
    assert drawn(ds) != first
    check_item(ds[0], 16)


def test_unpaired_view_of_a_paired_layout(paired_root: Path) -> None:
    ds = open_dataset(paired_root, "train", layout="unpaired", image_size=16)
    assert isinstance(ds, UnpairedView)
    assert len(ds) == 4
    assert "sketches/lonely.png" in ds.unmatched
    check_item(ds[2], 16)


def test_class_folders(tmp_path: Path) -> None:
    for i in range(3):
        save(np.full((8, 8, 3), (200, 20, 20), np.uint8), tmp_path / "train" / "cat" / f"{i}.png")
        save(np.full((8, 8, 3), (20, 20, 200), np.uint8), tmp_path / "train" / "dog" / f"{i}.jpg")
    (tmp_path / "train" / "cat" / "Thumbs.txt").write_text("junk")
    (tmp_path / "train" / "empty").mkdir()
    (tmp_path / "train" / "empty" / "notes.txt").write_text("junk")
    assert detect_layout(tmp_path) == "class-folders"
    ds = open_dataset(tmp_path, "train")
    assert isinstance(ds, ClassFolderDataset)
    assert ds.classes == ["cat", "dog"]
    assert len(ds) == 6
    assert ds.unmatched == ["cat/Thumbs.txt"]
    item = ds[4]
    assert set(item) == {"B", "label", "path"}
    assert item["label"] == 1
    assert item["B"].shape == (3, 32, 32)
    assert float(item["B"][2].mean()) > 0.4 > float(item["B"][0].mean())  # blue dog
    only_dogs = ClassFolderDataset(tmp_path, "train", classes=["dog"], image_size=8)
    assert len(only_dogs) == 3
    assert only_dogs[0]["label"] == 0


def test_wrong_layout_says_what_was_expected_and_found(tmp_path: Path) -> None:
    (tmp_path / "foo").mkdir()
    (tmp_path / "bar.txt").write_text("x")
    with pytest.raises(DatasetLayoutError) as err:
        open_dataset(tmp_path, "train")
    msg = str(err.value)
    for needle in ("train/photos", "anno_train.json", "side-by-side", "<class>", "foo/", "bar.txt"):
        assert needle in msg
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        detect_layout(tmp_path / "missing")
    square = tmp_path / "sq"
    save(noise(0), square / "train" / "0.png")
    with pytest.raises(DatasetLayoutError, match=r"40x40, not side-by-side"):
        detect_layout(square)
    with pytest.raises(DatasetLayoutError, match="train/sketches"):
        PairedFoldersDataset(square, "train")


def test_synthetic_url() -> None:
    ds = open_dataset("synthetic://20", "train", image_size=32)
    val = open_dataset("synthetic://20?val=5&seed=3", "val", image_size=32)
    assert len(ds) == 20
    assert len(open_dataset("synthetic://20", "val")) == 2
    assert len(val) == 5
    item = ds[3]
    check_item(item, 32)
    assert item["path"] == "synthetic://0/train/3"
    ref = SyntheticPairs(20, size=32, seed=0)[3]
    assert torch.equal(item["A"], ref["A"])
    assert torch.equal(item["B"], ref["B"])
    rev = open_dataset("synthetic://20", "train", direction="photo2sketch", image_size=32)
    assert torch.equal(rev[3]["A"], ref["B"])
    with pytest.raises(DatasetLayoutError, match="synthetic://N"):
        open_dataset("synthetic://many", "train")


def test_dataloader_batches(paired_root: Path, fs2k_root: Path) -> None:
    ds = open_dataset(paired_root, "train", image_size=16)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, shuffle=True)
    batch = next(iter(loader))
    assert batch["A"].shape == (2, 3, 16, 16)
    assert len(batch["path"]) == 2
    fs = torch.utils.data.DataLoader(FS2KDataset(fs2k_root, image_size=16), batch_size=2)
    assert next(iter(fs))["attrs"].shape == (2, 7)


# --- the real datasets, where this machine has them -------------------------------------

needs_real = pytest.mark.skipif(not REAL_DATA.is_dir(), reason="no shared/data beside the repo")


@needs_real
def test_real_fs2k() -> None:
    root = REAL_DATA / "fs2k"
    train = open_dataset(root, "train", image_size=64)
    val = open_dataset(root, "val", image_size=64)
    assert isinstance(train, FS2KDataset)
    assert (len(train), len(val)) == (1058, 300)
    # photo2 sketches are PNG files named .jpg, some with alpha
    idx = [i for i, it in enumerate(train.items) if it[0].startswith("photo2/")]
    for i in [0, idx[0], idx[-1], len(train) - 1]:
        item = train[i]
        check_item(item, 64)
        assert item["attrs"].shape == (7,)
        assert float(item["A"].mean()) > 0.0  # a sketch: mostly light paper


@needs_real
@pytest.mark.parametrize(
    ("name", "n_train", "n_eval"),
    [("facades", 400, 106), ("edges2shoes_100", 100, 20), ("cifar10_catdog", 10000, 2000)],
)
def test_real_folders(name: str, n_train: int, n_eval: int) -> None:
    train = open_dataset(REAL_DATA / name, "train")
    val = open_dataset(REAL_DATA / name, "val")
    assert (len(train), len(val)) == (n_train, n_eval)
    item = val[len(val) - 1]
    key = "B" if name.startswith("cifar") else "A"
    assert item[key].shape[0] == 3
    assert float(item[key].abs().max()) <= 1.0
